package webui

import (
	"github.com/homebox/gateway/discovery"
	"github.com/homebox/gateway/supervisor"
	"github.com/homebox/gateway/webui/api"
)

// The parts' own types become the API's here, field by field, so a change
// inside the supervisor or discovery reaches clients only through this
// file. contract_test.go fails when a field of theirs is not carried over.

func apiApp(s supervisor.AppState) api.App {
	return api.App{
		Name: s.Name, Status: api.Status(s.Status), PID: s.PID, UptimeSeconds: s.UptimeSeconds,
		Restarts: s.Restarts, UnstableRestarts: s.UnstableRestarts, LastExitCode: s.LastExitCode,
		LastSignal: s.LastSignal, LastExitAt: s.LastExitAt, LastError: s.LastError, RestartReason: s.RestartReason, Ready: s.Ready,
		CPUPercent: s.CPUPercent, MemoryBytes: s.MemoryBytes, Command: s.Command, Args: s.Args,
		Cwd: s.Cwd, LogFile: s.LogFile, CreatedAt: s.CreatedAt, After: s.After,
		Restart: api.RestartPolicy(s.Restart), RestartDelay: s.RestartDelay, NextRestartIn: s.NextRestartIn,
		MaxMemoryBytes: s.MaxMemoryBytes, ReadyCheck: s.ReadyCheck, StopSignal: s.StopSignal,
		KillTimeout: s.KillTimeout, EnvNames: s.EnvNames, User: s.User,
	}
}

func apiApps(list []supervisor.AppState) []api.App {
	out := make([]api.App, 0, len(list))
	for _, s := range list {
		out = append(out, apiApp(s))
	}
	return out
}

func apiDevice(d discovery.Device) api.Device {
	out := api.Device{
		ID: d.ID, Name: d.Name, Manufacturer: d.Manufacturer, Model: d.Model, Firmware: d.Firmware,
		Hardware: d.Hardware, MAC: d.MAC, Address: d.Address, Identifiers: d.Identifiers,
		Connections: d.Connections, Sources: d.Sources, Availability: d.Availability,
		AvailabilityTopics: d.AvailabilityTopics, FirstSeen: d.FirstSeen, LastSeen: d.LastSeen,
	}
	for _, e := range d.Entities {
		out.Entities = append(out.Entities, api.Entity(e))
	}
	for _, s := range d.Services {
		out.Services = append(out.Services, api.Service(s))
	}
	return out
}

func apiDevices(list []discovery.Device) []api.Device {
	out := make([]api.Device, 0, len(list))
	for _, d := range list {
		out = append(out, apiDevice(d))
	}
	return out
}
