// cpuspin: CPU saturation. Four goroutines per P spin on arithmetic forever, so a
// runnable goroutine waits for others' time slices (about 10 ms each) before it runs:
// the scheduler latency the seed flags above 10 ms.
package main

import (
	"runtime"
	"sync/atomic"

	"goparkfixtures/harness"
)

var sink atomic.Uint64

func spin(seed uint64) {
	x := seed
	for {
		for i := 0; i < 1<<16; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		sink.Store(x)
	}
}

func main() {
	harness.Run(harness.Program{
		Setup: func(cfg harness.Config) {
			for i := 0; i < 4*runtime.GOMAXPROCS(0); i++ {
				go spin(uint64(i))
			}
		},
		Request: func(i int) {},
	})
}
