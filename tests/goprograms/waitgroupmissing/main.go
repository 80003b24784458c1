// waitgroupmissing: a batch fans out to workers; a worker that finds nothing to
// do returns early without calling Done, so the batch waits forever.
package main

import (
	"sync"
	"time"

	"goparkfixtures/harness"
)

func work(i int) int {
	time.Sleep(time.Millisecond)
	return i
}

func runBatch(id int) {
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func(i int) {
			if i == 0 {
				return // early return without wg.Done(): the bug
			}
			defer wg.Done()
			work(id + i)
		}(i)
	}
	wg.Wait()
}

func main() {
	harness.Run(harness.Program{Request: runBatch})
}
