package probes

import (
	"strings"
	"testing"

	"github.com/medic-sre/medic/internal/testkit"
)

// What an instance sends reaches the reason only as a fixed text and a
// short excerpt of printable ASCII: no control characters, no line
// breaks, bounded, quoted.
func TestHTTPReasonOfHostileResponses(t *testing.T) {
	long := strings.Repeat("A", 5000)
	for _, tc := range []struct {
		desc, response string
		want           string // the whole reason
	}{
		{desc: "the issue's example: a mention and a disguised link as a header line",
			response: "HTTP/1.1 200 OK\r\n<!channel> re-login now <https://evil.example/sso|SSO portal>\r\n\r\n",
			want:     `malformed HTTP response: bad header line, starting "<!channel> re-login now <https://evil.ex..."`},
		{desc: "a status code that is markup",
			response: "HTTP/1.1 2<@here>0 OK\r\n\r\n",
			want:     `malformed HTTP response: bad status code, starting "2<@here>0"`},
		{desc: "a status line of control characters, without a space",
			response: "\x1b[31m<!everyone>\x7f\r\n\r\n",
			want:     `malformed HTTP response: bad status line, starting "?[31m<!everyone>?"`},
		{desc: "a status code that is a right-to-left override",
			response: "HTTP/1.1 \xe2\x80\xae evil\r\n\r\n",
			want:     `malformed HTTP response: bad status code, starting "???"`},
		{desc: "a very long status line",
			response: "HTTP/1.1 " + long + "\r\n\r\n",
			want:     `malformed HTTP response: bad status code, starting "` + strings.Repeat("A", 40) + `..."`},
		{desc: "a protocol version that is a Markdown link",
			response: "[x](https://evil.example) 200 OK\r\n\r\n",
			want:     `malformed HTTP response: bad protocol version, starting "[x](https://evil.example)"`},
		{desc: "a header without a colon, with a NUL and a bell",
			response: "HTTP/1.1 200 OK\r\nX-Evil\x00\x07 @channel\r\n\r\n",
			want:     `malformed HTTP response: bad header line, starting "X-Evil?? @channel"`},
		{desc: "a Content-Length that is a link",
			response: "HTTP/1.1 200 OK\r\nContent-Length: <https://evil.example|click>\r\n\r\n",
			want:     `malformed HTTP response: bad Content-Length, starting "<https://evil.example|click>"`},
		{desc: "an unknown transfer encoding",
			response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: @here\r\n\r\n",
			want:     `malformed HTTP response: unsupported Transfer-Encoding, starting "@here"`},
		{desc: "a failing status with hostile headers and body: only the code",
			response: "HTTP/1.1 503 <!channel> down\r\nX-Note: <!here> [login](https://evil.example)\r\nContent-Length: 22\r\n\r\n<!channel> @here body!",
			want:     `status 503`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			addr := testkit.RawHTTPServer(t, tc.response)
			r := probeHTTP(t.Context(), Target{Address: addr, Settings: probeSettings()}, testLogger(t))
			if r.Success {
				t.Fatalf("probe passed")
			}
			if r.Reason != tc.want {
				t.Errorf("reason\n%s\nwant\n%s", r.Reason, tc.want)
			}
			assertInertReason(t, r.Reason)
		})
	}
}

func assertInertReason(t *testing.T, reason string) {
	t.Helper()
	if len(reason) > maxReason+len(`malformed HTTP response: unsupported Transfer-Encoding, starting ""...`) {
		t.Errorf("reason of %d bytes", len(reason))
	}
	for i := 0; i < len(reason); i++ {
		if c := reason[i]; c < 0x20 || c > 0x7e {
			t.Errorf("reason holds byte %#x at %d: %q", c, i, reason)
		}
	}
}
