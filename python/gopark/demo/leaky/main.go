// leaky is gopark's demo: a small price-search service with a classic goroutine leak.
//
// GET /search?q=... asks a slow upstream for a price with a deadline; when the deadline
// passes the handler answers 504 and returns, but the goroutine that called the upstream
// is left blocked forever sending its late answer on an unbuffered channel.
// GET /health is the healthy path, and a fixed pool of audit workers idles on a queue.
// net/http/pprof is served on the same port.
//
// It prints two lines on stdout that gopark waits for:
//
//	gopark-fixture listening 127.0.0.1:PORT
//	gopark-fixture ready
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"strconv"
	"time"
)

var (
	upstreamDelay = flag.Duration("upstream-delay", 50*time.Millisecond, "how slow the upstream is")
	deadline      = flag.Duration("deadline", 10*time.Millisecond, "how long /search waits")
	auditQueue    = make(chan string, 128)
)

// queryUpstream stands for a call to a slow pricing service.
func queryUpstream(q string) int {
	time.Sleep(*upstreamDelay)
	return len(q) * 100
}

// lookupPrice asks the upstream with a deadline.
func lookupPrice(ctx context.Context, q string) (int, error) {
	result := make(chan int) // unbuffered: the leak
	go func() {
		result <- queryUpstream(q) // blocks forever once lookupPrice has returned
	}()
	select {
	case price := <-result:
		return price, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("q")
	ctx, cancel := context.WithTimeout(r.Context(), *deadline)
	defer cancel()
	price, err := lookupPrice(ctx, q)
	auditQueue <- q
	if errors.Is(err, context.DeadlineExceeded) {
		http.Error(w, "upstream timed out", http.StatusGatewayTimeout)
		return
	}
	fmt.Fprintf(w, "%s: %d\n", q, price)
}

func health(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, "ok")
}

// auditWorker is one of a fixed pool: healthy goroutines idle between jobs.
func auditWorker() {
	for q := range auditQueue {
		_ = strconv.Quote(q)
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	for i := 0; i < 8; i++ {
		go auditWorker()
	}
	http.HandleFunc("/search", search)
	http.HandleFunc("/health", health)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("gopark-fixture listening %s\n", ln.Addr())
	fmt.Println("gopark-fixture ready")
	log.Fatal(http.Serve(ln, nil))
}
