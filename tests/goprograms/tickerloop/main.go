// tickerloop: every session starts a heartbeat loop on a time.Ticker that has no
// way to exit (and the ticker is never stopped), so sessions never go away.
package main

import (
	"sync/atomic"
	"time"

	"goparkfixtures/harness"
)

var beats atomic.Int64

func heartbeat(session int) {
	beats.Add(1)
}

func startSession(id int) {
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		for range t.C { // no exit, no t.Stop(): the bug
			heartbeat(id)
		}
	}()
}

func main() {
	harness.Run(harness.Program{Request: startSession})
}
