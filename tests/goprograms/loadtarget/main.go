// loadtarget: a busy service with many idle goroutines, to measure what observing it
// costs. The first -n requests park for good (like idle keep-alive connections or
// parked workers); after ready, -rate requests per second each do a fixed amount of
// CPU work (hashing), so the process has a steady CPU load to compare against.
package main

import (
	"crypto/sha256"
	"sync/atomic"

	"goparkfixtures/harness"
)

var (
	parkAll = make(chan struct{}) // never closed: the parked goroutines stay
	idleN   int
	sink    atomic.Uint32
	payload = make([]byte, 64<<10)
)

func park() { <-parkAll }

// work hashes 256 KiB: a fixed amount of CPU per request.
func work() {
	var sum [32]byte
	for i := 0; i < 4; i++ {
		sum = sha256.Sum256(payload)
		payload[i] ^= sum[0]
	}
	sink.Add(uint32(sum[1]))
}

func handle(i int) {
	if i < idleN {
		park()
		return
	}
	work()
}

func main() {
	harness.Run(harness.Program{
		Setup:   func(cfg harness.Config) { idleN = cfg.N },
		Request: handle,
	})
}
