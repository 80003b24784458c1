// globalmap: a process-wide cache keyed by request id that nothing ever evicts,
// so the heap grows with every request. No goroutine leaks here.
package main

import (
	"sync"

	"goparkfixtures/harness"
)

var (
	mu       sync.Mutex
	sessions = map[int][]byte{}
)

func remember(id int) {
	buf := make([]byte, 64<<10) // 64 KiB per request, kept forever
	buf[0] = byte(id)
	mu.Lock()
	sessions[id] = buf // never deleted: the bug
	mu.Unlock()
}

func main() {
	harness.Run(harness.Program{Request: remember})
}
