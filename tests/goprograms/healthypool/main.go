// healthypool: a fixed pool of workers serves jobs from a queue; between jobs
// the workers wait on the queue. Nothing leaks.
package main

import (
	"sync/atomic"
	"time"

	"goparkfixtures/harness"
)

var (
	jobs = make(chan int, 64)
	done atomic.Int64
)

func worker() {
	for j := range jobs {
		time.Sleep(time.Millisecond)
		done.Add(int64(j % 2))
	}
}

func startPool(size int) {
	for i := 0; i < size; i++ {
		go worker()
	}
}

func main() {
	harness.Run(harness.Program{
		Setup:   func(cfg harness.Config) { startPool(16) },
		Request: func(i int) { jobs <- i },
	})
}
