// rangeunclosed: each request hands its items to a consumer goroutine over a
// channel, but never closes the channel, so the consumer's range never ends.
package main

import "goparkfixtures/harness"

var processed = make(chan int, 1<<20)

func consume(items <-chan int) {
	sum := 0
	for v := range items { // blocks forever: nobody closes items
		sum += v
	}
	processed <- sum
}

func process(i int) {
	items := make(chan int)
	go consume(items)
	for k := 0; k < 3; k++ {
		items <- i + k
	}
	// missing: close(items)
}

func main() {
	harness.Run(harness.Program{Request: process})
}
