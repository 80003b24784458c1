// labeledwork: every request runs under pprof labels (handler, tenant), burns a
// little CPU, hashes under one shared mutex (contention for the mutex and block
// profiles) and keeps its buffer in a bounded ring (heap samples). Every fourth
// request then parks forever on a channel a global keeps alive, still labelled.
// It gives the profile parser tests string labels in goroutine and CPU profiles.
package main

import (
	"context"
	"fmt"
	"runtime/pprof"
	"sync"

	"goparkfixtures/harness"
)

var (
	mu     sync.Mutex
	total  uint64
	recent [][]byte
	never  = make(chan struct{}) // nobody ever sends: the parked requests wait here
)

// checksum is small enough for the compiler to inline, so its frames show up as
// inlined lines of one location in the profiles.
func checksum(data []byte) uint64 {
	h := uint64(1469598103934665603)
	for _, b := range data {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return h
}

func work(i int) {
	buf := make([]byte, 32<<10)
	for r := 0; r < 32; r++ { // ~1 ms of checksum: CPU samples land in it
		buf[r] = byte(i + r)
		mu.Lock()
		total += checksum(buf)
		mu.Unlock()
	}
	mu.Lock()
	recent = append(recent, buf)
	if len(recent) > 64 {
		recent = recent[1:]
	}
	mu.Unlock()
	if i%4 == 0 {
		<-never
	}
}

func main() {
	harness.Run(harness.Program{Request: func(i int) {
		labels := pprof.Labels("handler", "report", "tenant", fmt.Sprintf("t%d", i%3))
		pprof.Do(context.Background(), labels, func(context.Context) { work(i) })
	}})
}
