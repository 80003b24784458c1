// sendaftertimeout: the most common leak LeakProf reports. fetch starts a worker
// that sends its result on an unbuffered channel; the caller gives up after a
// timeout and returns, so the worker's send blocks forever.
package main

import (
	"time"

	"goparkfixtures/harness"
)

func slowLookup(id int) int {
	time.Sleep(20 * time.Millisecond)
	return id * 2
}

func fetch(id int) (int, bool) {
	result := make(chan int) // unbuffered: the bug
	go func() {
		result <- slowLookup(id) // blocks forever once fetch has returned
	}()
	select {
	case v := <-result:
		return v, true
	case <-time.After(time.Millisecond):
		return 0, false
	}
}

func main() {
	harness.Run(harness.Program{Request: func(i int) { fetch(i) }})
}
