package limits

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/cenkalti/backoff/v4"
	"github.com/go-kit/log"
)

// pages follows tokens to the last page, hands each answer to page once,
// and stops at the first error from either side.
func TestPages(t *testing.T) {
	tests := []struct {
		desc      string
		tokens    []*string // next token after each page
		failCall  int       // 1-based call that fails (0: none)
		failPage  int       // 1-based page that fails (0: none)
		wantAsked string    // tokens asked for, "-" for nil
		wantPages int
		wantErr   string
	}{
		{desc: "one page", tokens: []*string{nil}, wantAsked: "-", wantPages: 1},
		{desc: "three pages", tokens: []*string{aws.String("a"), aws.String("b"), nil}, wantAsked: "-,a,b", wantPages: 3},
		{desc: "a call fails on page 2: wrapped with the operation, nothing after",
			tokens: []*string{aws.String("a"), aws.String("b"), nil}, failCall: 2,
			wantAsked: "-,a", wantPages: 1, wantErr: "ec2:DescribeThings: access denied"},
		{desc: "page handling fails: returned as is",
			tokens: []*string{aws.String("a"), nil}, failPage: 1,
			wantAsked: "-", wantPages: 1, wantErr: "bad page"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c := &caller{logger: log.NewNopLogger(), newBackOff: func() backoff.BackOff { return &backoff.StopBackOff{} }}
			var asked []string
			calls, handled := 0, 0
			err := pages(context.Background(), c, "ec2:DescribeThings",
				func(_ context.Context, tok *string) (int, error) {
					calls++
					asked = append(asked, aws.ToString(tok))
					if calls == tc.failCall {
						return 0, errors.New("access denied")
					}
					return calls, nil
				},
				func(n int) (*string, error) {
					handled++
					if n == tc.failPage {
						return nil, errors.New("bad page")
					}
					return tc.tokens[n-1], nil
				})
			for i := range asked {
				if asked[i] == "" {
					asked[i] = "-"
				}
			}
			if got := strings.Join(asked, ","); got != tc.wantAsked {
				t.Errorf("tokens asked %q, want %q", got, tc.wantAsked)
			}
			if handled != tc.wantPages {
				t.Errorf("pages handled %d, want %d", handled, tc.wantPages)
			}
			if (err == nil) != (tc.wantErr == "") || (err != nil && err.Error() != tc.wantErr) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
