package main

import (
	"context"
	"testing"
	"time"
)

// TestBusy runs the load for a moment, so `go test -trace` records a trace of it.
func TestBusy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	startLoad(ctx)
	<-ctx.Done()
}
