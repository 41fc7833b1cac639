package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// serve listens on n loopback addresses (127.1.a.b, one port each, the
// offset-th on), answers
// every request on them with a bare HTTP/1.1 200 (cheaper than net/http, so
// the figures are mostly the clients'), prints the host:port addresses one a
// line, then "stats" and the address of its /gaps (gaps.go), then "ready",
// and runs until signalled. A request asking for "Connection: close" is
// answered and closed; others keep the connection.
func serve(n, offset int) int {
	var g gapRecorder
	for i := offset; i < offset+n; i++ {
		addr := fmt.Sprintf("127.1.%d.%d:0", 1+i/250, 1+i%250)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "medic-bench serve:", err)
			return 1
		}
		fmt.Println(l.Addr().String())
		go accept(l, &g, g.target())
	}
	stats, err := g.serveGaps()
	if err != nil {
		fmt.Fprintln(os.Stderr, "medic-bench serve:", err)
		return 1
	}
	fmt.Println("stats", stats)
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return 0
}

func accept(l net.Listener, g *gapRecorder, t *gapTarget) {
	for {
		c, err := l.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: back off
			continue
		}
		go answer(c, g, t)
	}
}

var (
	respKeep  = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	respClose = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
)

// answer serves requests on c, recording each in g as one to target t,
// until the client closes it, asks to, or is idle for a minute.
func answer(c net.Conn, g *gapRecorder, t *gapTarget) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 1024)
	for {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		closeAfter := false
		for first := true; ; first = false {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return
			}
			if first { // "GET /path HTTP/1.1"
				g.seen(t, requestPath(line), time.Now().UnixNano())
			}
			if len(line) <= 2 { // the blank line ending the header
				break
			}
			if len(line) > 11 && bytes.EqualFold(line[:11], []byte("connection:")) &&
				bytes.Contains(bytes.ToLower(line), []byte("close")) {
				closeAfter = true
			}
		}
		if closeAfter {
			c.Write(respClose)
			return
		}
		if _, err := c.Write(respKeep); err != nil {
			return
		}
	}
}

// requestPath is the path of a request line ("GET /path HTTP/1.1"),
// without allocating; empty if there is none.
func requestPath(line []byte) []byte {
	_, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return nil
	}
	path, _, _ := bytes.Cut(rest, []byte(" "))
	return path
}
