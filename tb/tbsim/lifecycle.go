package tbsim

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Gateway service RPCs (DefaultGatewayNotificationsService).
const (
	MethodGatewayDeviceRenamed = "gateway_device_renamed"
	MethodGatewayDeviceDeleted = "gateway_device_deleted"
)

// RenameDevice renames a device. Its data, credentials and pending RPCs
// stay with it. When a gateway last connected it, that gateway gets the
// one-way RPC gateway_device_renamed with params {"old": "new"} on its own
// device RPC topic (persistent: delivered when the gateway next subscribes
// to RPC if it is offline now). As in ThingsBoard, a gateway session that
// has the device connected keeps routing the old name to it until the
// session ends or disconnects it; after that, data under the old name
// creates a new device.
func (s *Server) RenameDevice(oldName, newName string) error {
	if strings.TrimSpace(newName) == "" {
		return fmt.Errorf("renaming %q: empty name", oldName)
	}
	s.mu.Lock()
	d := s.devices[oldName]
	if d == nil {
		s.mu.Unlock()
		return fmt.Errorf("renaming %q: %w", oldName, ErrUnknownDevice)
	}
	if oldName == newName {
		s.mu.Unlock()
		return nil
	}
	if _, dup := s.devices[newName]; dup {
		s.mu.Unlock()
		return fmt.Errorf("renaming %q to %q: %w", oldName, newName, ErrDuplicate)
	}
	delete(s.devices, oldName)
	d.info.Name = newName
	s.devices[newName] = d
	if c := s.creds[d.credID]; c != nil {
		c.device = newName
	}
	for _, o := range s.devices {
		if o.info.LastGateway == oldName {
			o.info.LastGateway = newName
		}
	}
	params, _ := json.Marshal(map[string]string{oldName: newName})
	c, targets := s.gatewayNoticeLocked(d, MethodGatewayDeviceRenamed, params)
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Info("device renamed", "old", oldName, "new", newName)
	for _, v := range targets {
		s.deliverRPC(v, c)
	}
	return nil
}

// DeleteDevice deletes a device with its data and credentials. Its own
// session is closed (MQTT 5 DISCONNECT 0x98), a gateway session drops it,
// and the gateway that last connected it gets the one-way RPC
// gateway_device_deleted with the name as params (persistent, as for
// RenameDevice). Data a gateway sends under the name afterwards creates a
// new device.
func (s *Server) DeleteDevice(name string) error {
	s.mu.Lock()
	d := s.devices[name]
	if d == nil {
		s.mu.Unlock()
		return fmt.Errorf("deleting %q: %w", name, ErrUnknownDevice)
	}
	delete(s.devices, name)
	delete(s.creds, d.credID)
	direct := d.direct
	if direct != nil {
		s.detachLocked(direct)
		s.stats.Kicks++
	}
	for _, v := range append([]*view(nil), d.views...) {
		if v.gw {
			s.removeViewLocked(v)
		}
	}
	d.pending = nil
	params, _ := json.Marshal(name)
	c, targets := s.gatewayNoticeLocked(d, MethodGatewayDeviceDeleted, params)
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Info("device deleted", "device", name)
	if direct != nil {
		direct.close(codeAdministrativeAction)
	}
	for _, v := range targets {
		s.deliverRPC(v, c)
	}
	return nil
}

// gatewayNoticeLocked queues a gateway service RPC for the gateway that last
// connected d, if there is one.
func (s *Server) gatewayNoticeLocked(d *device, method string, params json.RawMessage) (*rpcCall, []*view) {
	gw := s.devices[d.info.LastGateway]
	if d.info.LastGateway == "" || gw == nil || gw == d {
		return nil, nil
	}
	return s.queueRPCLocked(gw, method, params, true)
}
