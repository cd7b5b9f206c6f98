package sim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"sync"
)

func dial(ctx context.Context, addr string, tc *tls.Config) (net.Conn, error) {
	if tc == nil {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	d := tls.Dialer{Config: tc}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tlsc := conn.(*tls.Conn)
	return &tlsConn{Conn: tlsc, r: bufio.NewReader(tlsc)}, nil
}

// tlsConn is bufferedConn for TLS. paho writes a packet in pieces (fixed
// header, then each part) while holding the connection's lock when it is a
// sync.Locker: the pieces gather in a buffer and go out as one TLS record
// when the lock is released, instead of one record (and one system call)
// per piece, and two publishers' packets never interleave. A failed flush
// closes the connection, so the client's next read reports it.
type tlsConn struct {
	*tls.Conn
	r *bufio.Reader

	mu     sync.Mutex
	locked bool
	w      bytes.Buffer
}

func (c *tlsConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *tlsConn) Lock() { c.mu.Lock(); c.locked = true }

func (c *tlsConn) Unlock() {
	if c.w.Len() > 0 {
		if _, err := c.Conn.Write(c.w.Bytes()); err != nil {
			c.Conn.Close()
		}
		c.w.Reset()
	}
	c.locked = false
	c.mu.Unlock()
}

func (c *tlsConn) Write(p []byte) (int, error) {
	if c.locked { // only the lock's holder writes while it is held
		return c.w.Write(p)
	}
	return c.Conn.Write(p)
}
