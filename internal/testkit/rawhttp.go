package testkit

import (
	"bufio"
	"net"
	"testing"
)

// RawHTTPServer answers every connection on 127.0.0.1 with response, byte
// for byte (a malformed or hostile HTTP response as an instance might send
// it), after reading the request's header, then closes the connection. It
// returns host:port and stops when the test ends.
func RawHTTPServer(t testing.TB, response string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if line, err := br.ReadString('\n'); err != nil || line == "\r\n" {
						break
					}
				}
				_, _ = c.Write([]byte(response))
			}()
		}
	}()
	return l.Addr().String()
}
