// leaky is gopark's demo: a small price-search service with two classic leaks.
//
// GET /search?q=ITEM&req=ID asks a pricing upstream for ITEM's price with a deadline.
//
//   - Goroutine leak: when the deadline passes the handler answers 504 and returns, but
//     the goroutine that called the upstream stays blocked forever sending its late
//     answer on an unbuffered channel. The upstream is slow for a quarter of the items
//     (those whose number is a multiple of 4), so a quarter of the searches leak one.
//   - Memory leak: every answered search keeps a copy of its rendered result page in a
//     process-wide cache keyed by the whole query string. The query carries a per-request
//     id, so no entry is ever hit again, and nothing evicts them.
//
// GET /health is the healthy path; a fixed pool of audit workers idles on a queue.
// net/http/pprof is served on the same port.
//
// It prints two lines on stdout that gopark waits for:
//
//	gopark-fixture listening 127.0.0.1:PORT
//	gopark-fixture ready
//
// and exits by itself when the process that started it goes away.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	slowDelay = flag.Duration("upstream-delay", 60*time.Millisecond, "how slow the upstream is for a cold item")
	deadline  = flag.Duration("deadline", 20*time.Millisecond, "how long /search waits for the upstream")
	// ~200 KB pages: the heap profile samples one allocation per 512 KiB on average, so
	// smaller pages would let a short look (--quick) miss the cache growing.
	offers     = flag.Int("offers", 2000, "offers on a result page (about 100 bytes each)")
	auditQueue = make(chan string, 128)
	pages      = pageCache{entries: map[string][]byte{}}
)

// queryUpstream stands for a call to a pricing service that is slow for cold items.
func queryUpstream(q string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(q, "item-"))
	if n%4 == 0 {
		time.Sleep(*slowDelay)
	} else {
		time.Sleep(time.Millisecond)
	}
	return 100 + n%900
}

// lookupPrice asks the upstream with a deadline.
func lookupPrice(ctx context.Context, q string) (int, error) {
	result := make(chan int) // unbuffered: the goroutine leak
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

// pageCache keeps rendered result pages so a repeated query is answered at once.
type pageCache struct {
	mu      sync.Mutex
	entries map[string][]byte
}

func (c *pageCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	page, ok := c.entries[key]
	return page, ok
}

func (c *pageCache) put(key string, page []byte) {
	c.mu.Lock()
	c.entries[key] = append([]byte(nil), page...) // the memory leak: never evicted
	c.mu.Unlock()
}

// renderPage writes the result page: the price and the offers of the item.
func renderPage(q string, price int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s: %d\n", q, price)
	for i := 0; i < *offers; i++ {
		fmt.Fprintf(&b, "offer %4d for %-12s at %6d cents, ships in %d days, seller #%05d\n",
			i, q, price+i, 1+i%7, (price*31+i)%100000)
	}
	return b.Bytes()
}

func search(w http.ResponseWriter, r *http.Request) {
	key := r.URL.RawQuery // includes the per-request id: every key is new
	if page, ok := pages.get(key); ok {
		w.Write(page)
		return
	}
	q := r.URL.Query().Get("q")
	ctx, cancel := context.WithTimeout(r.Context(), *deadline)
	defer cancel()
	price, err := lookupPrice(ctx, q)
	auditQueue <- q
	if errors.Is(err, context.DeadlineExceeded) {
		http.Error(w, "upstream timed out", http.StatusGatewayTimeout)
		return
	}
	page := renderPage(q, price)
	pages.put(key, page)
	w.Write(page)
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

// exitWithParent ends the program when the process that started it (gopark) is gone,
// so a killed gopark never leaves the demo running.
func exitWithParent() {
	parent := os.Getppid()
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != parent {
			os.Exit(0)
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	go exitWithParent()
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
