//go:build go1.25

// bubbledump: writes a goroutine?debug=2 dump from inside a testing/synctest bubble
// (Go 1.25+), so the dump holds the marks only bubbles give: "(durable)" and
// "synctest bubble N". Next to the bubble a goroutine waits locked to its OS thread
// ("locked to thread"). Run as a test binary: bubbledump.test -test.run TestDump.
// synctest refuses the old asynchronous timer channels that go.mod's "go 1.21" selects:
//go:debug asynctimerchan=0
package bubbledump

import (
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var never = make(chan struct{})

func lockedWaiter(ready chan<- struct{}) {
	runtime.LockOSThread()
	ready <- struct{}{}
	<-never
}

func bubbleReceiver(ch chan int) { <-ch }

func bubbleSleeper() { time.Sleep(time.Hour) }

func bubbleWaiter(wg *sync.WaitGroup) { wg.Wait() }

func TestDump(t *testing.T) {
	ready := make(chan struct{})
	go lockedWaiter(ready)
	<-ready
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan int)
		var wg sync.WaitGroup
		wg.Add(1)
		for i := 0; i < 3; i++ {
			go bubbleReceiver(ch)
		}
		go bubbleSleeper()
		go bubbleWaiter(&wg)
		synctest.Wait() // every goroutine of the bubble is durably blocked now
		_ = pprof.Lookup("goroutine").WriteTo(os.Stdout, 2)
		close(ch)
		wg.Done()
		time.Sleep(2 * time.Hour) // fake time: lets the sleeper finish
	})
}
