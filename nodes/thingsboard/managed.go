package thingsboard

import (
	"fmt"
	"strings"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/tb"
)

// ServicePrefix starts the names of the service RPCs a managing connection
// answers itself (tbflow.ping, tbflow.stats, …); the box's manager
// registers them on the device. A tbflow.* method it did not register is
// answered with an error instead of reaching the flow's nodes.
const ServicePrefix = "tbflow."

// mgmtState is what a connection counts for health reports.
type mgmtState struct {
	connected  bool
	connects   int64
	reconnects int64
}

// noteStatusLocked counts connections; c.mu is held.
func (c *Connection) noteStatusLocked(st tb.Status) {
	now := st.State == tb.StateConnected
	if now && !c.mgmt.connected {
		c.mgmt.connects++
		if c.mgmt.connects > 1 {
			c.mgmt.reconnects++
		}
	}
	c.mgmt.connected = now
}

// Standalone makes a managing connection run without any node using it
// (engine.Standalone).
func (c *Connection) Standalone() bool { return c.conf.Manage }

// Managed reports whether the connection is the box's management channel.
func (c *Connection) Managed() bool { return c.conf.Manage }

// StatsInterval is how often the managing device sends health telemetry.
func (c *Connection) StatsInterval() time.Duration {
	if d := c.conf.StatsInterval.D(); d > 0 {
		return d
	}
	return time.Minute
}

// Reconnects is how many times the session was established again after
// its first connection.
func (c *Connection) Reconnects() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mgmt.reconnects
}

// State is the connection's state: connecting, connected, offline or
// closed ("stopped" before Start).
func (c *Connection) State() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dev == nil {
		return "stopped"
	}
	return c.dev.Status().State.String()
}

// serviceMethod refuses the tbflow.* methods nobody registered on a
// managing connection.
func (c *Connection) serviceMethod(req tb.RPCRequest) error {
	if !c.conf.Manage || req.Device != "" || !strings.HasPrefix(req.Method, ServicePrefix) {
		return nil
	}
	return fmt.Errorf("unknown service method %q", req.Method)
}

// hasCredentials reports whether the connection names any credentials.
func (c *connConfig) hasCredentials() bool {
	return c.AccessToken != "" || c.Username != "" || c.ClientID != "" || c.CertFile != ""
}

// checkProvisioned fails Start for a connection that is to provision
// itself and has not done so yet: tbflow provisions it before the flow
// runs and keeps the credentials in the credentials file.
func (c *Connection) checkProvisioned() error {
	if c.conf.ProvisionKey == "" || c.conf.hasCredentials() {
		return nil
	}
	return fmt.Errorf("tb-connection %s: not provisioned yet (tbflow run and tbflow serve provision it on start): %w", c.addr(), engine.ErrNotConnected)
}
