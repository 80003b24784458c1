// gateway: the pprof endpoints as services often expose them in production — behind a
// TLS front that wants a bearer token and a client certificate — plus a Prometheus-style
// /metrics page with go_info{version="..."} as client_golang's Go collector writes it.
//
// The plain harness port serves pprof and /metrics without any checks. Two flags make
// profiles misbehave the way fronts do:
//
//	-flaky heap:2           the first 2 requests for heap answer 503 Service Unavailable
//	-throttle heap:2:1      the first 2 requests for heap answer 429 Too Many Requests
//	                        with "Retry-After: 1"; heap:1:date+3 sends an HTTP date 3 s
//	                        ahead instead; a fourth field sets the status (heap:1:1:503)
//	-text-only goroutine    the binary form (no debug=N) of goroutine is refused with 406
//	-login heap             heap redirects to a sign-in page (200, HTML), as SSO fronts do
//	-echo-auth heap         heap answers 401 quoting the request's Authorization header
//	                        and query string back, as careless auth proxies do
//
// With -dir DIR the program also serves the same handlers over TLS and writes into DIR:
//
//	addr            HOST:PORT of the TLS front
//	ca.pem          the certificate authority that signed the server and client certs
//	client.pem      a client certificate the front accepts
//	client-key.pem  its private key
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"goparkfixtures/harness"
)

var (
	dir      = flag.String("dir", "", "serve over TLS too and write its address and credentials here")
	token    = flag.String("token", "", "bearer token the TLS front requires")
	flaky    = flag.String("flaky", "", "NAME:N: the first N requests for profile NAME answer 503")
	throttle = flag.String("throttle", "", "NAME:N:AFTER[:STATUS]: the first N requests for NAME answer 429 with Retry-After")
	textOnly = flag.String("text-only", "", "comma-separated profiles whose binary form is refused")
	login    = flag.String("login", "", "comma-separated profiles that redirect to a sign-in page")
	echoAuth = flag.String("echo-auth", "", "comma-separated profiles that answer 401 quoting the credentials")
)

func signIn(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, "<html><body><form>Sign in to continue</form></body></html>\n")
}

func toSignIn(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/login?next="+r.URL.Path, http.StatusFound)
}

// unavailableFirst answers 503 to the first n requests, then serves the profile.
func unavailableFirst(name string, n int64) http.HandlerFunc {
	var seen atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= n {
			http.Error(w, "upstream busy, try again", http.StatusServiceUnavailable)
			return
		}
		pprof.Handler(name).ServeHTTP(w, r)
	}
}

// throttleFirst answers status (429 or 503) with a Retry-After header to the first n
// requests, then serves the profile. after is delay-seconds, or "date+S" for an HTTP
// date S seconds from the moment of the answer.
func throttleFirst(name string, n int64, after string, status int) http.HandlerFunc {
	var seen atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= n {
			value := after
			if ahead, ok := strings.CutPrefix(after, "date+"); ok {
				s, err := strconv.Atoi(ahead)
				if err != nil {
					panic(err)
				}
				value = time.Now().Add(time.Duration(s) * time.Second).UTC().Format(http.TimeFormat)
			}
			w.Header().Set("Retry-After", value)
			http.Error(w, "slow down", status)
			return
		}
		pprof.Handler(name).ServeHTTP(w, r)
	}
}

// rejectQuoting answers 401 with the credentials it was sent in the message.
func rejectQuoting(w http.ResponseWriter, r *http.Request) {
	http.Error(w, fmt.Sprintf("rejected Authorization %q with query %q",
		r.Header.Get("Authorization"), r.URL.RawQuery), http.StatusUnauthorized)
}

// refuseBinary serves only the text forms (debug=1, debug=2) of a profile.
func refuseBinary(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if d := r.FormValue("debug"); d == "" || d == "0" {
			http.Error(w, "binary responses are not allowed through this proxy", http.StatusNotAcceptable)
			return
		}
		pprof.Handler(name).ServeHTTP(w, r)
	}
}

func goInfo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprintf(w, "# HELP go_goroutines Number of goroutines that currently exist.\n")
	fmt.Fprintf(w, "# TYPE go_goroutines gauge\ngo_goroutines %d\n", runtime.NumGoroutine())
	fmt.Fprintf(w, "# HELP go_info Information about the Go environment.\n")
	fmt.Fprintf(w, "# TYPE go_info gauge\ngo_info{version=%q} 1\n", runtime.Version())
}

type keyPair struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

func issue(tmpl *x509.Certificate, parent *keyPair) *keyPair {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	signer, parentCert := key, tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, signer)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return &keyPair{cert, der, key}
}

func writePEM(path, kind string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		panic(err)
	}
}

func (k *keyPair) tlsCert() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{k.der}, PrivateKey: k.key}
}

// serveTLS starts the authenticating front over http.DefaultServeMux.
func serveTLS(dir, token string) {
	now := time.Now()
	ca := issue(&x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gopark test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil)
	server := issue(&x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca)
	client := issue(&x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "gopark"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca)
	writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.der)
	writePEM(filepath.Join(dir, "client.pem"), "CERTIFICATE", client.der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(client.key)
	if err != nil {
		panic(err)
	}
	writePEM(filepath.Join(dir, "client-key.pem"), "PRIVATE KEY", keyDER)

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{server.tlsCert()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})
	if err != nil {
		panic(err)
	}
	front := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		http.DefaultServeMux.ServeHTTP(w, r)
	})
	go func() { _ = http.Serve(ln, front) }()
	if err := os.WriteFile(filepath.Join(dir, "addr"), []byte(ln.Addr().String()), 0o644); err != nil {
		panic(err)
	}
}

func main() {
	harness.Run(harness.Program{Setup: func(cfg harness.Config) {
		cfg.ServeMux.HandleFunc("/metrics", goInfo)
		if name, count, ok := strings.Cut(*flaky, ":"); ok {
			n, err := strconv.ParseInt(count, 10, 64)
			if err != nil {
				panic(err)
			}
			cfg.ServeMux.Handle("/debug/pprof/"+name, unavailableFirst(name, n))
		}
		if *throttle != "" {
			f := strings.Split(*throttle, ":")
			if len(f) < 3 {
				panic("-throttle wants NAME:N:AFTER[:STATUS]")
			}
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				panic(err)
			}
			status := http.StatusTooManyRequests
			if len(f) > 3 {
				if status, err = strconv.Atoi(f[3]); err != nil {
					panic(err)
				}
			}
			cfg.ServeMux.Handle("/debug/pprof/"+f[0], throttleFirst(f[0], n, f[2], status))
		}
		if *login != "" {
			cfg.ServeMux.HandleFunc("/login", signIn)
			for _, name := range strings.Split(*login, ",") {
				cfg.ServeMux.HandleFunc("/debug/pprof/"+name, toSignIn)
			}
		}
		if *echoAuth != "" {
			for _, name := range strings.Split(*echoAuth, ",") {
				cfg.ServeMux.HandleFunc("/debug/pprof/"+name, rejectQuoting)
			}
		}
		if *textOnly != "" {
			for _, name := range strings.Split(*textOnly, ",") {
				cfg.ServeMux.Handle("/debug/pprof/"+name, refuseBinary(name))
			}
		}
		if *dir != "" {
			serveTLS(*dir, *token)
		}
	}, Request: func(int) {}})
}
