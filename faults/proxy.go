package faults

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards TCP connections from a loopback port to a target address
// (a broker) and injects network faults between the two:
//
//   - Stall stops forwarding in both directions without closing anything:
//     bytes wait in the socket buffers, as on a link that went silent, and
//     flow again when the stall ends. Connections made during a stall are
//     accepted and stalled too; a connection closed by one side during a
//     stall is closed on the other side only when the stall ends (its last
//     bytes first).
//   - Refuse closes new connections at once (the broker is unreachable).
//
// When an observer is set, the proxy parses the MQTT packets it forwards and
// reports each one as it forwards it (just before writing it on), so a test
// can see which publishes the broker really acknowledged on the wire.
type Proxy struct {
	ln     net.Listener
	target string
	closed chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	flowing  chan struct{} // closed while forwarding; open during a stall
	refusing bool
	gen      int
	links    int
	live     map[*link]struct{}
	observe  func(WireEvent)
	stopOnce sync.Once
}

type link struct {
	id, gen          int
	client, upstream net.Conn
	once             sync.Once
	v5               atomic.Bool // the client's CONNECT asked for MQTT 5
}

func (l *link) close() {
	l.once.Do(func() {
		l.client.Close()
		l.upstream.Close()
	})
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	flowing := make(chan struct{})
	close(flowing)
	p := &Proxy{ln: ln, target: target, closed: make(chan struct{}), flowing: flowing, live: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address, 127.0.0.1:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's listening port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Observe sets the function that receives every forwarded MQTT packet. It
// runs on the forwarding goroutines and must not block. Set it before the
// first connection.
func (p *Proxy) Observe(fn func(WireEvent)) {
	p.mu.Lock()
	p.observe = fn
	p.mu.Unlock()
}

// SetGeneration tags the connections made from now on (WireEvent.Gen), for
// example with the number of broker restarts so far.
func (p *Proxy) SetGeneration(g int) {
	p.mu.Lock()
	p.gen = g
	p.mu.Unlock()
}

// Refuse makes the proxy close new connections at once (on) or forward them
// again (off). Connections already open are not touched.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refusing = on
	p.mu.Unlock()
}

// Connections is the number of connections accepted so far, refused ones
// included.
func (p *Proxy) Connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.links
}

// Hold starts a stall: nothing is forwarded until Release.
func (p *Proxy) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
		p.flowing = make(chan struct{})
	default: // already stalled
	}
}

// Release ends a stall: what waited is forwarded, in order.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
	default:
		close(p.flowing)
	}
}

// Stall holds every connection for d and then releases it. The returned
// channel is closed when forwarding has resumed.
func (p *Proxy) Stall(d time.Duration) <-chan struct{} {
	p.Hold()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.closed:
		}
		p.Release()
	}()
	return done
}

// Close stops listening, closes every connection and waits for the
// forwarding goroutines.
func (p *Proxy) Close() error {
	p.stopOnce.Do(func() {
		close(p.closed)
		p.ln.Close()
		p.mu.Lock()
		for l := range p.live {
			l.close()
		}
		p.mu.Unlock()
	})
	p.wg.Wait()
	return nil
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.links++
		id, gen, refusing := p.links, p.gen, p.refusing
		p.mu.Unlock()
		if refusing {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c, id, gen)
	}
}

func (p *Proxy) serve(c net.Conn, id, gen int) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	l := &link{id: id, gen: gen, client: c, upstream: up}
	p.mu.Lock()
	select {
	case <-p.closed:
		p.mu.Unlock()
		l.close()
		return
	default:
	}
	p.live[l] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { p.pump(l, c, up, ToServer) })
	wg.Go(func() { p.pump(l, up, c, ToClient) })
	wg.Wait()
	p.mu.Lock()
	delete(p.live, l)
	p.mu.Unlock()
}

// pump copies src to dst, waiting out stalls before each write and before
// passing a close on.
func (p *Proxy) pump(l *link, src, dst net.Conn, dir Direction) {
	defer l.close()
	buf := make([]byte, 32<<10)
	var pr packetReader
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitFlowing() {
				return
			}
			// Reported before the write: the receiver cannot react to a
			// packet (a PUBACK freeing a packet id for the next PUBLISH)
			// before its observer has seen it.
			p.mu.Lock()
			obs := p.observe
			p.mu.Unlock()
			if obs != nil {
				pr.feed(buf[:n], func(h byte, body []byte) {
					if lv := connectLevel(h, body); lv != 0 {
						l.v5.Store(lv == 5)
					}
					ev := decode(h, body, l.v5.Load())
					ev.Link, ev.Gen, ev.Dir = l.id, l.gen, dir
					obs(ev)
				})
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.waitFlowing()
			}
			return
		}
	}
}

// waitFlowing waits while the proxy is stalled; false means it was closed.
func (p *Proxy) waitFlowing() bool {
	p.mu.Lock()
	ch := p.flowing
	p.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-p.closed:
		return false
	}
}
