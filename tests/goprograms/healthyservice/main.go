// healthyservice: requests do a little work through a pool of connections and a
// mutex-protected cache with eviction, and complete. Nothing grows.
package main

import (
	"sync"
	"time"

	"goparkfixtures/harness"
)

type lru struct {
	mu    sync.Mutex
	items map[int][]byte
	order []int
}

func (c *lru) put(k int, v []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items[k] = v
	c.order = append(c.order, k)
	if len(c.order) > 100 {
		delete(c.items, c.order[0])
		c.order = c.order[1:]
	}
}

var cache = &lru{items: map[int][]byte{}}

func handle(i int) {
	done := make(chan []byte, 1) // buffered: the worker never blocks
	go func() {
		time.Sleep(time.Millisecond)
		done <- make([]byte, 1024)
	}()
	select {
	case v := <-done:
		cache.put(i, v)
	case <-time.After(time.Second):
	}
}

func main() {
	harness.Run(harness.Program{Request: handle})
}
