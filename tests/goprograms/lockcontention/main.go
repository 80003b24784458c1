// lockcontention: a hot lock. Workers update shared stats under one mutex and do the
// expensive part (formatting a report) while holding it, so most of their time is
// spent queued on the lock, yet every wait ends: contention, not a leak.
package main

import (
	"sync"
	"time"

	"goparkfixtures/harness"
)

type stats struct {
	mu     sync.Mutex
	counts map[int]int
}

var shared = &stats{counts: map[int]int{}}

// record holds the lock across the slow part: the bug.
func (s *stats) record(k int) {
	s.mu.Lock()
	s.counts[k%128]++
	deadline := time.Now().Add(200 * time.Microsecond)
	for time.Now().Before(deadline) { // stands for work that needs no lock
	}
	s.mu.Unlock()
}

func worker(id int) {
	for i := 0; ; i++ {
		shared.record(id + i)
		time.Sleep(100 * time.Microsecond)
	}
}

func main() {
	harness.Run(harness.Program{Request: worker})
}
