package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// FakeARC is a FAKE of the ARC zonal shift API, for tests: moto lacks it.
// It is an httptest server on loopback speaking ARC's REST-JSON protocol
// for the three calls medic makes — StartZonalShift (POST /zonalshifts),
// CancelZonalShift (DELETE /zonalshifts/{id}) and ListZonalShifts (GET
// /zonalshifts, filtered by status and resourceIdentifier, one page) — with
// epoch-second timestamps and ARC's rule of one active shift per resource
// (409 ConflictException, reason SimultaneousZonalShiftsConflict). Shifts do
// not expire by themselves. Reach it with the real SDK client through
// arczonalshift.Options.BaseEndpoint, or, for the medic binary, the
// environment variable AWS_ENDPOINT_URL_ARC_ZONAL_SHIFT. It checks no
// signature.
type FakeARC struct {
	srv *httptest.Server
	now func() time.Time

	mu     sync.Mutex
	next   int
	shifts []map[string]any // JSON members as ARC returns them
	calls  []string
}

// FakeShift is one shift the fake holds, for assertions.
type FakeShift struct {
	ID, Resource, AwayFrom, Comment, Status string
}

// StartFakeARCT starts a FakeARC for a test and closes it when the test
// ends. now is its clock (nil: time.Now).
func StartFakeARCT(tb testing.TB, now func() time.Time) *FakeARC {
	if now == nil {
		now = time.Now
	}
	f := &FakeARC{now: now}
	f.srv = httptest.NewServer(f)
	tb.Cleanup(f.srv.Close)
	return f
}

// URL is the fake's base endpoint.
func (f *FakeARC) URL() string { return f.srv.URL }

// Calls lists the requests received, "METHOD /path", oldest first.
func (f *FakeARC) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Shifts lists every shift started, in order, with its current status
// (ACTIVE or CANCELED).
func (f *FakeARC) Shifts() []FakeShift {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FakeShift, 0, len(f.shifts))
	for _, s := range f.shifts {
		out = append(out, FakeShift{ID: s["zonalShiftId"].(string), Resource: s["resourceIdentifier"].(string),
			AwayFrom: s["awayFrom"].(string), Comment: s["comment"].(string), Status: s["status"].(string)})
	}
	return out
}

// ServeHTTP answers one ARC call.
func (f *FakeARC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/zonalshifts":
		f.start(w, r)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/zonalshifts/"):
		f.cancel(w, strings.TrimPrefix(r.URL.Path, "/zonalshifts/"))
	case r.Method == http.MethodGet && r.URL.Path == "/zonalshifts":
		q := r.URL.Query()
		items := []map[string]any{}
		for _, s := range f.shifts {
			if (q.Get("status") == "" || s["status"] == q.Get("status")) &&
				(q.Get("resourceIdentifier") == "" || s["resourceIdentifier"] == q.Get("resourceIdentifier")) {
				item := map[string]any{"shiftType": "ZONAL_SHIFT"}
				for k, v := range s {
					item[k] = v
				}
				items = append(items, item)
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
	default:
		arcError(w, http.StatusNotFound, "UnknownOperationException", r.Method+" "+r.URL.Path, nil)
	}
}

func (f *FakeARC) start(w http.ResponseWriter, r *http.Request) {
	var in struct{ ResourceIdentifier, AwayFrom, ExpiresIn, Comment string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		arcError(w, http.StatusBadRequest, "ValidationException", err.Error(), nil)
		return
	}
	exp, err := time.ParseDuration(in.ExpiresIn) // "30m", "2h": ARC's form parses as a Go duration
	if err != nil || in.AwayFrom == "" || in.ResourceIdentifier == "" || in.Comment == "" {
		arcError(w, http.StatusBadRequest, "ValidationException", "resourceIdentifier, awayFrom, expiresIn and comment are required", nil)
		return
	}
	for _, s := range f.shifts {
		if s["resourceIdentifier"] == in.ResourceIdentifier && s["status"] == "ACTIVE" {
			arcError(w, http.StatusConflict, "ConflictException", "a zonal shift is already active for the resource",
				map[string]any{"reason": "SimultaneousZonalShiftsConflict", "zonalShiftId": s["zonalShiftId"]})
			return
		}
	}
	f.next++
	now := f.now()
	s := map[string]any{"zonalShiftId": fmt.Sprintf("zs-%d", f.next), "resourceIdentifier": in.ResourceIdentifier,
		"awayFrom": in.AwayFrom, "comment": in.Comment, "status": "ACTIVE",
		"startTime": now.Unix(), "expiryTime": now.Add(exp).Unix()}
	f.shifts = append(f.shifts, s)
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(s)
}

func (f *FakeARC) cancel(w http.ResponseWriter, id string) {
	for _, s := range f.shifts {
		if s["zonalShiftId"] != id {
			continue
		}
		if s["status"] != "ACTIVE" {
			arcError(w, http.StatusConflict, "ConflictException", "the zonal shift is not active",
				map[string]any{"reason": "ZonalShiftStatusNotActive", "zonalShiftId": id})
			return
		}
		s["status"] = "CANCELED"
		_ = json.NewEncoder(w).Encode(s)
		return
	}
	arcError(w, http.StatusNotFound, "ResourceNotFoundException", "no zonal shift "+id, nil)
}

// arcError writes an error the way REST-JSON services do: the type in
// X-Amzn-Errortype, the message and extra members in the body.
func arcError(w http.ResponseWriter, status int, code, msg string, extra map[string]any) {
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	body := map[string]any{"message": msg}
	for k, v := range extra {
		body[k] = v
	}
	_ = json.NewEncoder(w).Encode(body)
}
