// mutexpileup: a cache refresh holds the cache's mutex across a call to an
// upstream that never answers (a TCP read with no deadline), so every request
// that needs the cache queues behind the lock.
package main

import (
	"net"
	"sync"

	"goparkfixtures/harness"
)

type cache struct {
	mu      sync.Mutex
	entries map[int]string
	conn    net.Conn
}

// refresh holds c.mu while it waits for the upstream: the bug. It closes locked once
// it holds the lock.
func (c *cache) refresh(locked chan<- struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(locked)
	buf := make([]byte, 1)
	_, _ = c.conn.Read(buf) // upstream accepted the connection and never writes
	c.entries = map[int]string{}
}

func (c *cache) get(key int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[key]
}

var shared *cache

func main() {
	harness.Run(harness.Program{
		Setup: func(cfg harness.Config) {
			// A silent upstream: accepts and never writes.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				panic(err)
			}
			go func() {
				var held []net.Conn
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					held = append(held, c)
				}
			}()
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				panic(err)
			}
			shared = &cache{entries: map[int]string{}, conn: conn}
			// Every request queues: none may take the lock before refresh does (the
			// scheduler, on a busy machine, could run many requests first).
			locked := make(chan struct{})
			go shared.refresh(locked)
			<-locked
		},
		Request: func(i int) { shared.get(i) },
	})
}
