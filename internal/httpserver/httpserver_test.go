package httpserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const shortRead = 300 * time.Millisecond

func start(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(h, nil, shortRead, shortRead)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestStalledBodyIsCutOff sends headers and part of a body, then nothing:
// the server gives up on the request instead of waiting for the rest.
func TestStalledBodyIsCutOff(t *testing.T) {
	read := make(chan error, 1)
	addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		read <- err
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "POST /v1/devices HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"namespace\":")
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("the handler read a whole body that was never sent")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled body is still being read after 30 s")
	}
	// The connection is closed: the read ends (EOF or reset), it does not hang.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(c); err != nil && strings.Contains(err.Error(), "timeout") {
		t.Fatal("the server kept the stalled connection open")
	}
}

// TestLongResponseOutlivesReadTimeout: a bodiless request whose response
// lasts longer than the read timeout (the explorer's live feed) is not cut
// off.
func TestLongResponseOutlivesReadTimeout(t *testing.T) {
	addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(3 * shortRead): // the feed's next event, after the deadline
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: second\n\n")
	}))
	resp, err := http.Get("http://" + addr + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			got = append(got, l)
		}
	}
	if strings.Join(got, ",") != "data: first,data: second" {
		t.Fatalf("stream %q, want both events", got)
	}
}
