// Package harness is the shared start-up of gopark's fixture programs: it serves
// net/http/pprof on a loopback port, runs the program's scenario and tells the
// test driver (on stdout) where it listens and when the scenario has run.
//
// Protocol on stdout, one line each:
//
//	gopark-fixture listening 127.0.0.1:PORT
//	gopark-fixture ready
package harness

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // the endpoints gopark reads
	"os"
	"runtime"
	"time"
)

// Config is what every scenario receives.
type Config struct {
	N        int           // how many times to run the scenario's leaky path up front
	Rate     float64       // then this many more per second, forever (0: none)
	Addr     string        // where the pprof server listens
	Hold     time.Duration // scenario-specific duration (e.g. how long a burst lasts)
	ServeMux *http.ServeMux
}

// Program is one fixture scenario.
type Program struct {
	// Setup runs once before any request (may be nil).
	Setup func(cfg Config)
	// Request is one unit of the program's work, e.g. one incoming request. The harness
	// runs it in a goroutine of its own, like a server runs each request: N times before
	// "ready", then Rate times a second until killed.
	Request func(i int)
}

// Run parses the common flags, starts the pprof server, runs the program and prints
// "ready"; then it keeps sending requests at -rate until the process is killed.
func Run(prog Program) {
	n := flag.Int("n", 200, "how many times to run the leaky path before ready")
	rate := flag.Float64("rate", 0, "leaky path runs per second after ready")
	addr := flag.String("addr", "127.0.0.1:0", "pprof listen address")
	hold := flag.Duration("hold", 2*time.Second, "scenario-specific duration")
	blockRate := flag.Int("block-rate", 0, "runtime.SetBlockProfileRate")
	mutexFraction := flag.Int("mutex-fraction", 0, "runtime.SetMutexProfileFraction")
	crash := flag.Bool("crash", false, "panic after ready (for traceback fixtures)")
	flag.Parse()

	runtime.SetBlockProfileRate(*blockRate)
	runtime.SetMutexProfileFraction(*mutexFraction)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gopark-fixture:", err)
		os.Exit(1)
	}
	go func() { _ = http.Serve(ln, nil) }()
	cfg := Config{N: *n, Rate: *rate, Addr: ln.Addr().String(), Hold: *hold, ServeMux: http.DefaultServeMux}
	fmt.Printf("gopark-fixture listening %s\n", cfg.Addr)

	if prog.Setup != nil {
		prog.Setup(cfg)
	}
	for i := 0; i < cfg.N; i++ {
		go prog.Request(i)
	}
	// Let the goroutines the scenario started reach their blocking points.
	time.Sleep(300 * time.Millisecond)
	fmt.Println("gopark-fixture ready")

	if *crash {
		panic("gopark-fixture: crash requested")
	}
	if *rate > 0 {
		tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
		for i := cfg.N; ; i++ {
			<-tick.C
			go prog.Request(i)
		}
	}
	select {}
}
