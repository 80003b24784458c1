// tracebusy: a busy program for execution-trace tests and benchmarks. Workers do a bit
// of everything the scheduler traces: channel ping-pong, mutex and RWMutex contention,
// select with timers, sleeps, WaitGroups, file syscalls, loopback TCP (network waits),
// allocation (GC cycles), goroutine churn, user tasks/regions/logs, and a few goroutines
// that leak (blocked on a channel send nobody receives).
//
// With -trace FILE it records its own trace for -for (runtime/trace.Start, or the
// flight recorder with -flight) and exits (with -cpu and trace.Start, not before the
// process used minCPU in the trace, so that it holds CPU samples on a loaded machine);
// otherwise it serves net/http/pprof through the shared harness and keeps working, so
// /debug/pprof/trace can be fetched.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"syscall"
	"time"

	"goparkfixtures/harness"
)

var (
	traceFile = flag.String("trace", "", "write an execution trace here for -for, then exit")
	duration  = flag.Duration("for", time.Second, "how long to trace with -trace")
	workers   = flag.Int("workers", 8, "busy workers")
	cpu       = flag.Bool("cpu", false, "also run the CPU profiler (CPU samples in the trace)")
	flight    = flag.Bool("flight", false, "record with the flight recorder (Go 1.25+) and write its window")
	leaks     = flag.Int("leaks", 5, "goroutines leaked per second (blocked forever on a send)")
)

// minCPU is the CPU time a -cpu trace lasts for at least: ~20 profiling samples at
// 100 Hz, where a short trace on a loaded machine may get none (measured: 2 to 13 in
// 200 ms). maxWait bounds how long a trace waits for it.
const (
	minCPU  = 200 * time.Millisecond
	maxWait = 30 * time.Second
)

var (
	mu     sync.Mutex
	rw     sync.RWMutex
	table  = map[int]int{} // guarded by mu
	shared int             // guarded by rw
	sink   [][]byte
)

// pingPong bounces a value between two goroutines over unbuffered channels.
func pingPong(ctx context.Context, rounds int) {
	a, b := make(chan int), make(chan int)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for v := range a {
			b <- v + 1
		}
	}()
	for i := 0; i < rounds; i++ {
		a <- i
		<-b
	}
	close(a)
	<-done
}

// contend takes a shared mutex and a read/write lock.
func contend(i int) {
	mu.Lock()
	table[i%64]++
	mu.Unlock()
	if i%8 == 0 {
		rw.Lock()
		shared++
		rw.Unlock()
	} else {
		rw.RLock()
		_ = shared
		rw.RUnlock()
	}
}

// fanOut starts short-lived goroutines and waits for them.
func fanOut(n int) {
	var wg sync.WaitGroup
	for j := 0; j < n; j++ {
		wg.Add(1)
		go func(j int) {
			defer wg.Done()
			buf := make([]byte, 1024*(j+1))
			buf[0] = byte(j)
			mu.Lock()
			sink = append(sink, buf)
			if len(sink) > 256 {
				sink = sink[:0]
			}
			mu.Unlock()
		}(j)
	}
	wg.Wait()
}

// fileIO does a small write and sync on a temp file: real syscalls.
func fileIO(f *os.File) {
	_, _ = f.WriteAt([]byte("gopark tracebusy\n"), 0)
}

// echoServer answers each line on loopback TCP; clients block in network waits.
func echoServer() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}(c)
		}
	}()
	return ln.Addr().String()
}

func netRoundTrip(addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for k := 0; k < 3; k++ {
		fmt.Fprintf(c, "ping %d\n", k)
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
	}
}

// leak blocks forever sending on a channel nobody reads.
func leak() {
	ch := make(chan int)
	go func() { ch <- 1 }()
}

func worker(ctx context.Context, id int, addr string, f *os.File) {
	for i := 0; ctx.Err() == nil; i++ {
		tctx, task := trace.NewTask(ctx, "request")
		trace.Log(tctx, "worker", fmt.Sprint(id))
		trace.WithRegion(tctx, "pingpong", func() { pingPong(tctx, 20) })
		trace.WithRegion(tctx, "contend", func() {
			for k := 0; k < 50; k++ {
				contend(i*50 + k)
			}
		})
		fanOut(4)
		switch i % 4 {
		case 0:
			time.Sleep(200 * time.Microsecond)
		case 1:
			select {
			case <-time.After(100 * time.Microsecond):
			case <-ctx.Done():
			}
		case 2:
			fileIO(f)
		case 3:
			netRoundTrip(addr)
		}
		task.End()
		if i%16 == 0 {
			runtime.Gosched()
		}
	}
}

func startLoad(ctx context.Context) {
	addr := echoServer()
	f, err := os.CreateTemp("", "tracebusy")
	if err != nil {
		panic(err)
	}
	_ = os.Remove(f.Name()) // unlinked: still writable, gone when the program exits
	for id := 0; id < *workers; id++ {
		go worker(ctx, id, addr, f)
	}
	if *leaks > 0 {
		go func() {
			t := time.NewTicker(time.Second / time.Duration(*leaks))
			defer t.Stop()
			for {
				select {
				case <-t.C:
					leak()
				case <-ctx.Done():
					return
				}
			}
		}()
	}
}

func main() {
	// The harness parses the flags (ours included) before it calls Setup.
	harness.Run(harness.Program{
		Setup: func(harness.Config) {
			if *traceFile != "" {
				os.Exit(recordTrace())
			}
			startLoad(context.Background())
		},
		Request: func(int) {},
	})
}

// recordTrace runs the load while tracing for -for and returns the exit code.
func recordTrace() int {
	out, err := os.Create(*traceFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if *cpu {
		if err := pprof.StartCPUProfile(io.Discard); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	for k := 0; k < 3; k++ {
		leak() // present before tracing starts: seen through status events
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startLoad(ctx)
	if *flight {
		// Let the load run before the window starts, so it begins mid-stream.
		time.Sleep(*duration / 2)
		if err := recordFlight(out, *duration); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	} else {
		if err := trace.Start(out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		start, cpuStart := time.Now(), processCPU()
		if *leaks > 0 {
			// Leaks created in the window whatever the ticker manages on a loaded
			// machine (a starved process drops its ticks).
			for k := 0; k < 5; k++ {
				leak()
			}
		}
		time.Sleep(*duration)
		for *cpu && processCPU()-cpuStart < minCPU && time.Since(start) < maxWait {
			time.Sleep(10 * time.Millisecond)
		}
		trace.Stop()
	}
	if err := out.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// processCPU is the CPU time (user and system) the process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
