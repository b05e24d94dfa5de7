package tb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// OTAKind selects firmware or software updates.
type OTAKind string

// OTA kinds: their attribute and topic prefixes.
const (
	Firmware OTAKind = "fw"
	Software OTAKind = "sw"
)

// OTA states a device reports in the fw_state / sw_state telemetry key.
const (
	OTADownloading = "DOWNLOADING"
	OTADownloaded  = "DOWNLOADED"
	OTAVerified    = "VERIFIED"
	OTAUpdating    = "UPDATING"
	OTAUpdated     = "UPDATED"
	OTAFailed      = "FAILED"
)

// DefaultOTAChunkSize is the chunk size used when none is given.
const DefaultOTAChunkSize = 16 * 1024

// OTAPackage describes the package the server assigned, from the shared
// attributes fw_title, fw_version, fw_tag, fw_size, fw_checksum,
// fw_checksum_algorithm and fw_url (sw_… for software).
type OTAPackage struct {
	Kind              OTAKind
	Title             string
	Version           string
	Tag               string
	Size              int64
	Checksum          string
	ChecksumAlgorithm string
	// URL is set for packages hosted outside ThingsBoard; they cannot be
	// downloaded over MQTT.
	URL string
}

func (k OTAKind) keys() []string {
	p := string(k) + "_"
	return []string{p + "title", p + "version", p + "tag", p + "size", p + "checksum", p + "checksum_algorithm", p + "url"}
}

func (k OTAKind) valid() error {
	if k != Firmware && k != Software {
		return fmt.Errorf("tb: unknown OTA kind %q (want fw or sw)", string(k))
	}
	return nil
}

func packageFrom(kind OTAKind, shared map[string]any) *OTAPackage {
	p := string(kind) + "_"
	str := func(k string) string {
		switch v := shared[p+k].(type) {
		case string:
			return v
		case nil:
			return ""
		default:
			return fmt.Sprint(v)
		}
	}
	pkg := &OTAPackage{
		Kind: kind, Title: str("title"), Version: str("version"), Tag: str("tag"),
		Checksum: str("checksum"), ChecksumAlgorithm: str("checksum_algorithm"), URL: str("url"),
	}
	switch v := shared[p+"size"].(type) {
	case float64:
		pkg.Size = int64(v)
	case int64:
		pkg.Size = v
	case uint64:
		pkg.Size = int64(min(v, 1<<62))
	case json.Number:
		pkg.Size, _ = v.Int64()
	case string:
		pkg.Size, _ = strconv.ParseInt(v, 10, 64)
	}
	if pkg.Title == "" && pkg.Version == "" {
		return nil
	}
	return pkg
}

// OTAPackageInfo asks the server which package of kind is assigned to the
// device. It returns nil when none is.
func (d *Device) OTAPackageInfo(ctx context.Context, kind OTAKind) (*OTAPackage, error) {
	if err := kind.valid(); err != nil {
		return nil, err
	}
	a, err := d.RequestAttributes(ctx, nil, kind.keys())
	if err != nil {
		return nil, err
	}
	return packageFrom(kind, a.Shared), nil
}

type otaDownload struct {
	cancel context.CancelCauseFunc
}

// DownloadOTA downloads pkg over MQTT in chunks of chunkSize bytes (0 =
// DefaultOTAChunkSize; capped to the server's maximum payload size) and
// verifies its checksum. progress, when set, is called after each chunk.
// Chunk requests lost to a reconnect are sent again; an error the server
// reports on v2/fw/error ends the download with that error.
func (d *Device) DownloadOTA(ctx context.Context, pkg *OTAPackage, chunkSize int, progress func(received, total int64)) ([]byte, error) {
	if pkg == nil {
		return nil, errors.New("tb: no OTA package to download")
	}
	if err := pkg.Kind.valid(); err != nil {
		return nil, err
	}
	if pkg.URL != "" && pkg.Size == 0 {
		return nil, fmt.Errorf("tb: %s package %q is hosted at %q, not on the server", pkg.Kind, pkg.Title, pkg.URL)
	}
	if chunkSize <= 0 {
		chunkSize = DefaultOTAChunkSize
	}
	if maxPayload := d.c.limits().maxPayload; chunkSize > maxPayload {
		chunkSize = maxPayload
	}
	kind := string(pkg.Kind)
	d.c.ensureSub("v2/" + kind + "/response/+/chunk/+")
	d.c.ensureSub("v2/fw/error")
	if err := d.c.waitConnected(ctx); err != nil {
		return nil, fmt.Errorf("tb: downloading %s package: %w", kind, err)
	}

	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req := strconv.FormatInt(d.c.nextRequestID(), 10)
	dl := &otaDownload{cancel: cancel}
	d.otaMu.Lock()
	d.ota[req] = dl
	d.otaMu.Unlock()
	defer func() {
		d.otaMu.Lock()
		delete(d.ota, req)
		d.otaMu.Unlock()
	}()

	size := strconv.Itoa(chunkSize)
	data := make([]byte, 0, max(pkg.Size, 0))
	for n := 0; pkg.Size <= 0 || int64(len(data)) < pkg.Size; n++ {
		reqTopic := "v2/" + kind + "/request/" + req + "/chunk/" + strconv.Itoa(n)
		respTopic := "v2/" + kind + "/response/" + req + "/chunk/" + strconv.Itoa(n)
		chunk, err := d.c.request(dctx, reqTopic, respTopic, []byte(size))
		if err != nil {
			if cause := context.Cause(dctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
				return nil, cause
			}
			return nil, fmt.Errorf("tb: downloading %s chunk %d: %w", kind, n, err)
		}
		if len(chunk) == 0 {
			break
		}
		data = append(data, chunk...)
		if progress != nil {
			progress(int64(len(data)), pkg.Size)
		}
		if len(chunk) < chunkSize && pkg.Size <= 0 {
			break
		}
	}
	if pkg.Size > 0 && int64(len(data)) != pkg.Size {
		return nil, fmt.Errorf("tb: %s package %q: received %d bytes, expected %d", kind, pkg.Title, len(data), pkg.Size)
	}
	if pkg.Checksum != "" {
		alg := pkg.ChecksumAlgorithm
		if alg == "" {
			alg = "SHA256"
		}
		if err := VerifyChecksum(alg, data, pkg.Checksum); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// onOTADownlink routes chunk responses to their requests and server errors
// to the running downloads.
func (d *Device) onOTADownlink(topic string, payload []byte) {
	if topic == "v2/fw/error" || topic == "v2/sw/error" {
		err := fmt.Errorf("tb: server refused the OTA request: %s", truncate(payload))
		d.otaMu.Lock()
		for _, dl := range d.ota {
			dl.cancel(err)
		}
		d.otaMu.Unlock()
		return
	}
	d.c.resolvePending(topic, payload)
}

// OTAUpdater runs firmware or software updates for a device.
type OTAUpdater struct {
	Kind OTAKind
	// CurrentTitle and CurrentVersion identify what runs now; a package with
	// the same title and version is not downloaded.
	CurrentTitle   string
	CurrentVersion string
	// ChunkSize of the download (0 = DefaultOTAChunkSize).
	ChunkSize int
	// Apply installs the verified package. Its error is reported as FAILED.
	Apply func(ctx context.Context, pkg *OTAPackage, data []byte) error
	// Progress, when set, is called after each downloaded chunk.
	Progress func(received, total int64)
}

// UpdateOTA runs one update: it asks which package is assigned and, when it
// differs from the current one, reports DOWNLOADING, downloads, reports
// DOWNLOADED, verifies the checksum, reports VERIFIED, UPDATING, calls
// Apply and reports UPDATED with current_<kind>_title/version. Any failure
// is reported as FAILED with <kind>_error. It returns the installed
// package, or nil when there was nothing to do.
func (d *Device) UpdateOTA(ctx context.Context, u *OTAUpdater) (*OTAPackage, error) {
	if err := u.Kind.valid(); err != nil {
		return nil, err
	}
	pkg, err := d.OTAPackageInfo(ctx, u.Kind)
	if err != nil {
		return nil, err
	}
	if pkg == nil || (pkg.Title == u.CurrentTitle && pkg.Version == u.CurrentVersion) {
		return nil, nil
	}
	return pkg, d.installOTA(ctx, u, pkg)
}

func (d *Device) installOTA(ctx context.Context, u *OTAUpdater, pkg *OTAPackage) error {
	k := string(u.Kind)
	report := func(state string, extra map[string]any) {
		v := map[string]any{k + "_state": state}
		for key, val := range extra {
			v[key] = val
		}
		if _, err := d.PublishTelemetry(ctx, v); err != nil {
			d.c.log.Warn("reporting OTA state", "state", state, "error", err)
		}
	}
	fail := func(err error) error {
		report(OTAFailed, map[string]any{k + "_error": err.Error()})
		return err
	}
	report(OTADownloading, nil)
	data, err := d.DownloadOTA(ctx, &OTAPackage{Kind: pkg.Kind, Title: pkg.Title, Version: pkg.Version, Size: pkg.Size, URL: pkg.URL}, u.ChunkSize, u.Progress)
	if err != nil {
		return fail(err)
	}
	report(OTADownloaded, nil)
	if pkg.Checksum != "" {
		alg := pkg.ChecksumAlgorithm
		if alg == "" {
			alg = "SHA256"
		}
		if err := VerifyChecksum(alg, data, pkg.Checksum); err != nil {
			return fail(err)
		}
	}
	report(OTAVerified, nil)
	report(OTAUpdating, nil)
	if u.Apply != nil {
		var aerr error
		runGuarded("ota apply", d.c.cfg.SlowHandler*12, d.c.reportError, func() {
			defer func() {
				if r := recover(); r != nil {
					aerr = fmt.Errorf("apply panicked: %v", r)
					panic(r)
				}
			}()
			aerr = u.Apply(ctx, pkg, data)
		})
		if aerr != nil {
			return fail(fmt.Errorf("tb: applying %s %s %s: %w", k, pkg.Title, pkg.Version, aerr))
		}
	}
	u.CurrentTitle, u.CurrentVersion = pkg.Title, pkg.Version
	report(OTAUpdated, map[string]any{"current_" + k + "_title": pkg.Title, "current_" + k + "_version": pkg.Version})
	return nil
}

// WatchOTA runs u whenever the server assigns a package that differs from
// the current one (now, after each reconnect, and on every assignment),
// one update at a time. Errors are reported through Config.OnError (and as
// FAILED to the server). The returned function stops watching.
func (d *Device) WatchOTA(u *OTAUpdater) (stop func(), err error) {
	if err := u.Kind.valid(); err != nil {
		return nil, err
	}
	var (
		mu      sync.Mutex
		running bool
		again   bool
	)
	ctx, cancel := context.WithCancel(d.c.ctx)
	var run func()
	run = func() {
		_, err := d.UpdateOTA(ctx, u)
		if err != nil && ctx.Err() == nil {
			d.c.reportError(fmt.Errorf("tb: %s update: %w", u.Kind, err))
		}
		mu.Lock()
		if again && ctx.Err() == nil {
			again = false
			mu.Unlock()
			run()
			return
		}
		running = false
		mu.Unlock()
	}
	unsub := d.SubscribeAttributes(u.Kind.keys(), func(AttributeUpdate) {
		mu.Lock()
		defer mu.Unlock()
		if running {
			again = true
			return
		}
		running = true
		go run()
	})
	return func() {
		unsub()
		cancel()
	}, nil
}
