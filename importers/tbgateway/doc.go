// Package tbgateway converts a ThingsBoard IoT Gateway Modbus connector
// configuration (modbus.json: master.slaves[] with their timeseries,
// attributes, attributeUpdates and rpc sections, and the slave section
// where the Gateway serves registers itself) into a tbflow flow:
// modbus-connection, modbus-in, gw-device, tb-telemetry-out and
// tb-attr-out for the uplink; modbus-write and modbus-read behind
// gw-device for attribute updates and RPCs; modbus-server for the slave
// section. Every value is read with the tb-gateway convention, so the flow
// sends the keys and values the Gateway would. Convert also returns a
// report of every option that did not map.
package tbgateway
