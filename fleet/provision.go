package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/tb"
)

// Provision provisions the device of every tb-connection of f that has a
// provision key and has not been provisioned: it asks the server (with the
// profile's key and secret, as the device named by deviceName or the host
// name) and uses the answer from then on.
//
//   - A connection without credentials gets the access token the server
//     issues (or MQTT basic credentials, if the server issues those); f is
//     saved with store, the secrets in the credentials file (mode 0600).
//   - A connection with its own MQTT basic credentials (username) or client
//     certificate (certFile) registers them (MQTT_BASIC, X509_CERTIFICATE);
//     a file beside the flow (FILE_provisioned.json) records that it did.
//
// Later starts find the credentials or the record and do not provision
// again. It reports whether anything was provisioned.
func Provision(ctx context.Context, store *engine.FileStore, f *engine.Flow, lookup engine.LookupEnv, log *slog.Logger) (bool, error) {
	lookup = lookupOr(lookup)
	if log == nil {
		log = slog.Default()
	}
	changed, saveFlow := false, false
	done := loadProvisioned(store)
	for _, n := range f.Nodes {
		if n.Type != ConnType || n.Disabled {
			continue
		}
		key := expand(n.Fields["provisionKey"], lookup)
		if key == "" || done[n.ID] != "" {
			continue
		}
		req := tb.ProvisionRequest{ProvisionKey: key}
		switch {
		case expand(n.Fields["certFile"], lookup) != "":
			pem, err := os.ReadFile(expand(n.Fields["certFile"], lookup))
			if err != nil {
				return changed, fmt.Errorf("tb-connection %q: provisioning with the client certificate: %w", n.ID, err)
			}
			req.CredentialsType, req.CertificatePEM = tb.CredentialsX509, string(pem)
		case expand(n.Fields["username"], lookup) != "":
			req.CredentialsType = tb.CredentialsMQTTBasic
			req.ClientID, req.Username, req.Password = expand(n.Fields["clientId"], lookup), expand(n.Fields["username"], lookup), expand(n.Fields["password"], lookup)
		case hasCredentials(n, lookup):
			continue // an access token: nothing to provision
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
		req.DeviceName, req.ProvisionSecret, req.Gateway = name, secret, expand(n.Fields["mode"], lookup) == "gateway"
		res, err := tb.Provision(pctx, srv, req)
		cancel()
		if err != nil {
			return changed, fmt.Errorf("tb-connection %q: %w", n.ID, err)
		}
		switch {
		case req.CredentialsType != "": // the device's own credentials, registered
		case res.CredentialsType == tb.CredentialsAccessToken:
			n.Fields["accessToken"] = res.AccessToken
			saveFlow = true
		case res.CredentialsType == tb.CredentialsMQTTBasic:
			n.Fields["clientId"], n.Fields["username"], n.Fields["password"] = res.ClientID, res.Username, res.Password
			saveFlow = true
		default:
			return changed, fmt.Errorf("tb-connection %q: the server issued %s credentials; give the device's certFile and keyFile instead of provisioning", n.ID, res.CredentialsType)
		}
		changed = true
		done[n.ID] = res.CredentialsType
		log.Info("device provisioned", "node_id", n.ID, "device", name, "credentials", res.CredentialsType)
	}
	if saveFlow && store != nil {
		if err := store.Save(f); err != nil {
			return changed, fmt.Errorf("keeping the provisioned credentials: %w", err)
		}
	}
	if changed {
		if err := saveProvisioned(store, done); err != nil {
			return changed, err
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

// provisionedPath is the record of connections that registered their own
// credentials.
func provisionedPath(store *engine.FileStore) string {
	ext := filepath.Ext(store.Path)
	return strings.TrimSuffix(store.Path, ext) + "_provisioned" + ext
}

func loadProvisioned(store *engine.FileStore) map[string]string {
	done := map[string]string{}
	if store == nil {
		return done
	}
	if data, err := os.ReadFile(provisionedPath(store)); err == nil {
		_ = json.Unmarshal(data, &done)
	}
	return done
}

func saveProvisioned(store *engine.FileStore, done map[string]string) error {
	if store == nil {
		return nil
	}
	data, _ := json.MarshalIndent(done, "", "  ")
	if err := engine.WriteFileAtomic(provisionedPath(store), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("recording the provisioning: %w", err)
	}
	return nil
}
