// manygoroutines: a service that has piled up -n blocked goroutines (100,000 for the
// benchmark) in a few shapes, as a big leaking service does: result sends nobody
// receives, requests queued on one mutex, waits in a deep call chain on their own
// channel, sleepers and batches waiting on a WaitGroup. It makes the big debug=2 dumps
// for benchmarks/dump_bench.py. One more goroutine waits 300 calls deep, so that the
// runtime elides the middle of its stack ("...N frames elided...").
package main

import (
	"sync"
	"time"

	"goparkfixtures/harness"
)

var (
	shared  sync.Mutex // held forever by setup: every locker queues
	batches sync.WaitGroup
)

// leakySend: the worker's send blocks forever because the caller already gave up.
func leakySend(i int) {
	result := make(chan int)
	go func() { result <- i * 2 }()
	// the caller returns without receiving
}

// lockedUpdate queues behind shared, held by nobody who will release it.
func lockedUpdate(i int) {
	shared.Lock()
	defer shared.Unlock()
	_ = i
}

// deepWait blocks at the bottom of a call chain on a channel of its own.
func deepWait(depth int, ch chan int) int {
	if depth == 0 {
		return <-ch
	}
	return deepWait(depth-1, ch) + 1
}

func main() {
	harness.Run(harness.Program{
		Setup: func(cfg harness.Config) {
			shared.Lock()
			batches.Add(1)
			go deepWait(300, make(chan int))
		},
		Request: func(i int) {
			switch i % 10 {
			case 0, 1, 2, 3:
				leakySend(i)
			case 4, 5:
				lockedUpdate(i)
			case 6, 7:
				deepWait(6, make(chan int))
			case 8:
				time.Sleep(time.Hour)
			default:
				batches.Wait()
			}
		},
	})
}
