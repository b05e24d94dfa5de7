package thingsboard

import (
	"context"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb"
)

// TestRPCPrecedence: a request goes to the most specific node (one for its
// device before one for every device, a method filter before none), the
// tb-rpc-in before a gw-device for the same device, the oldest among equals,
// as the tb-rpc-in help says.
func TestRPCPrecedence(t *testing.T) {
	c := &Connection{rpcs: map[int]*rpcListener{}}
	add := func(device, method string) *rpcListener {
		l := &rpcListener{device: device, method: method}
		c.addRPC(l)
		return l
	}
	pick := func(device, method string) *rpcListener {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.pickRPCLocked(tb.RPCRequest{Device: device, Method: method})
	}
	anyAll := add("", "")
	add("", "") // equal to anyAll, started later
	anySet := add("", "set")
	gwA := &rpcListener{device: "A", fallback: true}
	c.addRPC(gwA) // a gw-device for A, started before the tb-rpc-in nodes for A
	aAll := add("A", "")
	aSet := add("A", "set")
	gwB := &rpcListener{device: "B", fallback: true}
	c.addRPC(gwB)
	for _, tc := range []struct {
		device, method string
		want           *rpcListener
	}{
		{"", "get", anyAll},
		{"", "set", anySet},
		{"B", "get", gwB},
		{"B", "set", gwB},
		{"C", "get", anyAll},
		{"C", "set", anySet},
		{"A", "get", aAll},
		{"A", "set", aSet},
	} {
		if got := pick(tc.device, tc.method); got != tc.want {
			t.Errorf("%q/%q: got listener %d, want %d", tc.device, tc.method, got.seq, tc.want.seq)
		}
	}
}

// TestRPCWaitsForANode: a request that arrives before any node takes it
// goes to the node that starts within the grace period; with none, nil
// comes back once the context ends.
func TestRPCWaitsForANode(t *testing.T) {
	c := &Connection{rpcs: map[int]*rpcListener{}}
	req := tb.RPCRequest{Method: "set"}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if l := c.waitRPC(ctx, req); l != nil {
		t.Fatalf("no node: got listener %d", l.seq)
	}
	l := &rpcListener{}
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.addRPC(l)
	}()
	if got := c.waitRPC(context.Background(), req); got != l {
		t.Fatalf("got %v, want the node that started", got)
	}
}
