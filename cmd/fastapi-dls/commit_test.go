package main

import (
	"runtime/debug"
	"testing"
)

func TestCommitOf(t *testing.T) {
	vcs := &debug.BuildInfo{Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "c24b6313e4f5564b34685e45395fd9662b645be7"},
		{Key: "vcs.modified", Value: "false"},
	}}
	noVCS := &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "CGO_ENABLED", Value: "0"}}}
	tests := []struct {
		name, stamped string
		info          *debug.BuildInfo
		want          string
	}{
		{"stamped wins", "abc123", vcs, "abc123"},
		{"vcs revision", "", vcs, "c24b6313e4f5564b34685e45395fd9662b645be7"},
		{"tarball build: the version", "", noVCS, "1.2.3-1"},
		{"no build info: the version", "", nil, "1.2.3-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := commitOf(tt.stamped, "1.2.3-1", tt.info); got != tt.want {
				t.Errorf("commitOf = %q, want %q", got, tt.want)
			}
		})
	}
}
