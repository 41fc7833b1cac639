package lease

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// fakeTable is a stateful in-memory stand-in for one DynamoDB table, used
// where moto falls short: with it the tests drive the clock by hand and
// make calls slow, throttled or lost at chosen moments, which a real
// server cannot do deterministically. It evaluates exactly the two
// condition expressions the lease writes and refuses any other, so a
// change to them fails these tests instead of passing unchecked. The
// behaviour on the real thing is checked against moto in moto_test.go.
type fakeTable struct {
	mu    sync.Mutex
	items map[string]map[string]types.AttributeValue
}

func newFakeTable() *fakeTable {
	return &fakeTable{items: map[string]map[string]types.AttributeValue{}}
}

// conn is one replica's connection to a fakeTable, with its own faults.
type conn struct {
	t *fakeTable
	// before runs at the start of every call with the operation name; a
	// non-nil error fails the call without reaching the table. Tests use
	// it to advance the clock (a slow call) and to inject throttling,
	// timeouts and partitions.
	before func(op string) error
	// after runs once a call has been applied; a non-nil error replaces
	// the answer: the write landed but its answer was lost.
	after func(op string) error

	mu    sync.Mutex
	calls map[string]int
}

func (t *fakeTable) conn() *conn { return &conn{t: t, calls: map[string]int{}} }

func (c *conn) hook(op string) error {
	c.mu.Lock()
	c.calls[op]++
	c.mu.Unlock()
	if c.before != nil {
		return c.before(op)
	}
	return nil
}

func (c *conn) answer(op string, err error) error {
	if err == nil && c.after != nil {
		return c.after(op)
	}
	return err
}

func (c *conn) callCount(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

func (c *conn) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if err := c.hook("PutItem"); err != nil {
		return nil, err
	}
	out, err := c.t.PutItem(ctx, in, o...)
	if err = c.answer("PutItem", err); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *conn) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if err := c.hook("GetItem"); err != nil {
		return nil, err
	}
	out, err := c.t.GetItem(ctx, in, o...)
	if err = c.answer("GetItem", err); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *conn) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if err := c.hook("DeleteItem"); err != nil {
		return nil, err
	}
	out, err := c.t.DeleteItem(ctx, in, o...)
	if err = c.answer("DeleteItem", err); err != nil {
		return nil, err
	}
	return out, nil
}

// throttled is the error DynamoDB answers when a table is throttled.
var throttled = &types.ProvisionedThroughputExceededException{Message: aws.String("throttled (fake)")}

// conditionFailed is the error of a write whose condition does not hold.
func conditionFailed() error {
	return &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed")}
}

func (f *fakeTable) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if aws.ToString(in.ConditionExpression) != acquireCondition {
		return nil, &smithy.GenericAPIError{Code: "ValidationException", Message: "fake: unsupported condition " + aws.ToString(in.ConditionExpression)}
	}
	key, err := str(in.Item, attrName)
	if err != nil {
		return nil, err
	}
	me, err := str(in.ExpressionAttributeValues, ":me")
	if err != nil {
		return nil, err
	}
	var now, far, seen int64
	for k, v := range map[string]*int64{":now": &now, ":far": &far, ":seen": &seen} {
		if *v, err = num(in.ExpressionAttributeValues, k); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	old, exists := f.items[key]
	ok := !exists
	if exists {
		h, _ := str(old, attrHolder)
		e, _ := num(old, attrExpires)
		g, gerr := num(old, attrGeneration)
		ok = (h == me || e < now || e > far) && (gerr != nil || g == seen)
	}
	if ok {
		f.items[key] = in.Item
	}
	f.mu.Unlock()
	if !ok {
		return nil, conditionFailed()
	}
	return &dynamodb.PutItemOutput{}, nil
}

func (f *fakeTable) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if !aws.ToBool(in.ConsistentRead) {
		return nil, errors.New("fake: the lease must be read consistently")
	}
	key, err := str(in.Key, attrName)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	item := f.items[key]
	f.mu.Unlock()
	return &dynamodb.GetItemOutput{Item: item}, nil
}

func (f *fakeTable) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if aws.ToString(in.ConditionExpression) != releaseCondition {
		return nil, &smithy.GenericAPIError{Code: "ValidationException", Message: "fake: unsupported condition"}
	}
	key, err := str(in.Key, attrName)
	if err != nil {
		return nil, err
	}
	me, err := str(in.ExpressionAttributeValues, ":me")
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	old, exists := f.items[key]
	h, _ := str(old, attrHolder)
	ok := exists && h == me
	if ok {
		delete(f.items, key)
	}
	f.mu.Unlock()
	if !ok {
		return nil, conditionFailed()
	}
	return &dynamodb.DeleteItemOutput{}, nil
}

// item returns the holder and expiry (unix ms) in the item name.
func (f *fakeTable) item(name string) (holder string, expires int64, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	it, ok := f.items[name]
	if !ok {
		return "", 0, false
	}
	holder, _ = str(it, attrHolder)
	expires, _ = num(it, attrExpires)
	return holder, expires, true
}

func str(m map[string]types.AttributeValue, k string) (string, error) {
	if s, ok := m[k].(*types.AttributeValueMemberS); ok {
		return s.Value, nil
	}
	return "", fmt.Errorf("fake: %s is not a string attribute", k)
}

func num(m map[string]types.AttributeValue, k string) (int64, error) {
	if n, ok := m[k].(*types.AttributeValueMemberN); ok {
		return strconv.ParseInt(n.Value, 10, 64)
	}
	return 0, fmt.Errorf("fake: %s is not a number attribute", k)
}

// clock is a hand-driven clock; skewed makes a skewed view of it.
type clock struct{ *testkit.Clock }

func newClock() *clock { return &clock{testkit.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))} }

// skewed returns a clock reading c plus s.
func (c *clock) skewed(s time.Duration) func() time.Time {
	return func() time.Time { return c.Now().Add(s) }
}
