package http

import (
	"context"
	"errors"
	"fmt"
	"net"
	nethttp "net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// listener is one TCP listener shared by the http-in nodes that name the
// same address; each node adds its own route.
type listener struct {
	addr string
	srv  *nethttp.Server
	mux  atomic.Pointer[nethttp.ServeMux]

	routes map[any]route // owner → route; guarded by listenersMu
}

type route struct {
	pattern string // "POST /api/{device}"
	handler nethttp.Handler
}

var (
	listenersMu sync.Mutex
	listeners   = map[string]*listener{}
)

// addRoute serves pattern with h on addr, opening the listener when it is
// the first route there.
func addRoute(addr string, owner any, pattern string, h nethttp.Handler) error {
	listenersMu.Lock()
	defer listenersMu.Unlock()
	l := listeners[addr]
	if l != nil {
		for o, r := range l.routes {
			if o != owner && r.pattern == pattern {
				return fmt.Errorf("%s on %s is already served by another http-in node", pattern, addr)
			}
		}
	}
	fresh := l == nil
	if fresh {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		l = &listener{addr: addr, routes: map[any]route{}}
		l.srv = &nethttp.Server{
			Handler:           nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) { l.mux.Load().ServeHTTP(w, r) }),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    16 << 10,
		}
		listeners[addr] = l
		go l.srv.Serve(ln)
	}
	old, had := l.routes[owner]
	l.routes[owner] = route{pattern: pattern, handler: h}
	if err := l.rebuild(); err != nil {
		if had {
			l.routes[owner] = old
		} else {
			delete(l.routes, owner)
		}
		_ = l.rebuild()
		if fresh {
			l.close()
		}
		return err
	}
	return nil
}

// removeRoute stops serving owner's route; the listener closes with its
// last route.
func removeRoute(addr string, owner any) {
	listenersMu.Lock()
	defer listenersMu.Unlock()
	l := listeners[addr]
	if l == nil {
		return
	}
	if _, ok := l.routes[owner]; !ok {
		return
	}
	delete(l.routes, owner)
	if len(l.routes) == 0 {
		l.close()
		return
	}
	_ = l.rebuild()
}

func (l *listener) close() {
	delete(listeners, l.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.srv.Shutdown(ctx); err != nil {
		l.srv.Close()
	}
}

// rebuild makes a new mux from the routes (a ServeMux cannot forget a
// route).
func (l *listener) rebuild() (err error) {
	mux := nethttp.NewServeMux()
	owners := make([]route, 0, len(l.routes))
	for _, r := range l.routes {
		owners = append(owners, r)
	}
	sort.Slice(owners, func(i, j int) bool { return owners[i].pattern < owners[j].pattern })
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	for _, r := range owners {
		mux.Handle(r.pattern, r.handler)
	}
	l.mux.Store(mux)
	return nil
}

// checkPattern reports whether a ServeMux takes pattern.
func checkPattern(pattern string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New(fmt.Sprint(p))
		}
	}()
	nethttp.NewServeMux().Handle(pattern, nethttp.NotFoundHandler())
	return nil
}
