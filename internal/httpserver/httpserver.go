// Package httpserver builds the http.Server every role serves its API and
// explorer with, so that each has the same timeouts: a client that sends
// its request slowly, or opens a connection and sends nothing, is cut off
// instead of holding a connection and a goroutine for as long as it likes.
package httpserver

import (
	stdlog "log"
	"log/slog"
	"net/http"
	"time"
)

// Timeouts of every server. No WriteTimeout: the explorer's live feed is a
// response that lasts as long as the page is open. ReadTimeout does not end
// it: net/http lifts the read deadline once a request's body is read.
const (
	ReadHeaderTimeout = 10 * time.Second  // request line and headers
	ReadTimeout       = 20 * time.Second  // headers and body; API bodies are a few KB
	IdleTimeout       = 120 * time.Second // between requests on a kept-alive connection
	MaxHeaderBytes    = 64 << 10
)

// New returns a server of h with the timeouts above; log receives the
// server's own errors (TLS handshakes that fail, for instance) as warnings.
func New(h http.Handler, log *slog.Logger) *http.Server {
	return newServer(h, log, ReadHeaderTimeout, ReadTimeout)
}

func newServer(h http.Handler, log *slog.Logger, readHeader, read time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeader,
		ReadTimeout:       read,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          errorLog(log),
	}
}

func errorLog(log *slog.Logger) *stdlog.Logger {
	if log == nil {
		return nil
	}
	return slog.NewLogLogger(log.Handler(), slog.LevelWarn)
}
