// Package httpserver serves an HTTP handler with the timeouts every
// listener of the project uses, and stops it gracefully.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// The server's timeouts. KooGallery gives up on an answer after 5 s, so
// nothing it sends needs longer to arrive: /produce itself allows a request
// 5 s (api.ProduceReadLimit). Other routes (usage batches of 10,000
// records, the admin API) get ReadTimeout. A connection idle for
// IdleTimeout is closed, so idle or abandoned keep-alive connections do not
// pile up.
const (
	HeaderTimeout  = 5 * time.Second
	ReadTimeout    = 30 * time.Second
	WriteTimeout   = 60 * time.Second
	IdleTimeout    = 10 * time.Second
	MaxHeaderBytes = 64 << 10
	// ShutdownGrace is how long in-flight requests may finish once the
	// server is asked to stop.
	ShutdownGrace = 15 * time.Second
)

// Serve serves h on addr until ctx ends, then drains in-flight requests.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Addr: addr, Handler: h,
		ReadHeaderTimeout: HeaderTimeout, ReadTimeout: ReadTimeout,
		WriteTimeout: WriteTimeout, IdleTimeout: IdleTimeout, MaxHeaderBytes: MaxHeaderBytes,
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	log.Info("HTTP listening", "addr", ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
