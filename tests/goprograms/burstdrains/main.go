// burstdrains: a burst of requests all wait on a slow dependency for -hold, then
// complete. Goroutines pile up and drain back: not a leak.
package main

import (
	"time"

	"goparkfixtures/harness"
)

var hold = 2 * time.Second

func slowDependency() <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		time.Sleep(hold)
		close(ch)
	}()
	return ch
}

func handle(i int) {
	<-slowDependency()
}

func main() {
	harness.Run(harness.Program{
		Setup:   func(cfg harness.Config) { hold = cfg.Hold },
		Request: handle,
	})
}
