package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/tb"
)

// Provision provisions the device of every tb-connection of f that has a
// provision key and no credentials yet: it asks the server (with the
// profile's key and secret, as the device named by deviceName or the host
// name), sets the issued credentials on the node and saves f with store
// (the secrets go to the credentials file, mode 0600), so later starts
// use them and do not provision again. It reports whether f changed.
func Provision(ctx context.Context, store *engine.FileStore, f *engine.Flow, lookup engine.LookupEnv, log *slog.Logger) (bool, error) {
	lookup = lookupOr(lookup)
	if log == nil {
		log = slog.Default()
	}
	changed := false
	for _, n := range f.Nodes {
		if n.Type != ConnType || n.Disabled {
			continue
		}
		key := expand(n.Fields["provisionKey"], lookup)
		if key == "" || hasCredentials(n, lookup) {
			continue
		}
		secret := expand(n.Fields["provisionSecret"], lookup)
		if secret == "" || secret == engine.SecretPlaceholder {
			return changed, fmt.Errorf("tb-connection %q: provisioning needs provisionSecret", n.ID)
		}
		name := expand(n.Fields["deviceName"], lookup)
		if name == "" {
			h, err := os.Hostname()
			if err != nil {
				return changed, fmt.Errorf("tb-connection %q: no deviceName and no host name: %w", n.ID, err)
			}
			name = h
		}
		srv := serverConfig(n, lookup)
		log.Info("provisioning the device", "node_id", n.ID, "device", name, "server", srv.Host)
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := tb.Provision(pctx, srv, tb.ProvisionRequest{DeviceName: name, ProvisionKey: key, ProvisionSecret: secret,
			Gateway: expand(n.Fields["mode"], lookup) == "gateway"})
		cancel()
		if err != nil {
			return changed, fmt.Errorf("tb-connection %q: %w", n.ID, err)
		}
		switch res.CredentialsType {
		case tb.CredentialsAccessToken:
			n.Fields["accessToken"] = res.AccessToken
		case tb.CredentialsMQTTBasic:
			n.Fields["clientId"], n.Fields["username"], n.Fields["password"] = res.ClientID, res.Username, res.Password
		default:
			return changed, fmt.Errorf("tb-connection %q: the server issued %s credentials; give the device's certFile and keyFile instead of provisioning", n.ID, res.CredentialsType)
		}
		changed = true
		log.Info("device provisioned", "node_id", n.ID, "device", name, "credentials", res.CredentialsType)
	}
	if changed && store != nil {
		if err := store.Save(f); err != nil {
			return changed, fmt.Errorf("keeping the provisioned credentials: %w", err)
		}
	}
	return changed, nil
}

func hasCredentials(n *engine.NodeDef, lookup engine.LookupEnv) bool {
	for _, k := range []string{"accessToken", "username", "clientId", "certFile"} {
		if v := expand(n.Fields[k], lookup); v != "" && v != engine.SecretPlaceholder {
			return true
		}
	}
	return false
}

// serverConfig is the part of a tb-connection that reaches the server.
func serverConfig(n *engine.NodeDef, lookup engine.LookupEnv) tb.Config {
	cfg := tb.Config{Host: expand(n.Fields["host"], lookup)}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	cfg.Port, _ = strconv.Atoi(expand(n.Fields["port"], lookup))
	if n.Fields["tls"] == true {
		cfg.TLS = &tb.TLSConfig{CAFile: expand(n.Fields["caFile"], lookup), ServerName: expand(n.Fields["serverName"], lookup),
			InsecureSkipVerify: n.Fields["insecure"] == true}
	}
	return cfg
}
