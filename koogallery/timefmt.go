package koogallery

import (
	"fmt"
	"time"
)

// Time layouts used by the marketplace. All are UTC.
const (
	// LayoutSeconds is yyyyMMddHHmmss (refreshInstance.expireTime per its
	// table, Query Order times).
	LayoutSeconds = "20060102150405"
	// LayoutMillis is yyyyMMddHHmmssSSS (refreshInstance example,
	// UsageInfo.statisticalTime).
	LayoutMillis = "20060102150405.000"
	// LayoutOpenAPI is yyyyMMdd'T'HHmmss'Z' (usage push, X-Sdk-Date).
	LayoutOpenAPI = "20060102T150405Z"
)

// ParseTime parses a marketplace time of 14 digits (yyyyMMddHHmmss) or 17
// digits (yyyyMMddHHmmssSSS), both UTC (§7.6).
func ParseTime(s string) (time.Time, error) {
	for _, c := range s {
		if c < '0' || c > '9' {
			return time.Time{}, fmt.Errorf("time %q is not all digits", s)
		}
	}
	switch len(s) {
	case 14:
		return time.ParseInLocation(LayoutSeconds, s, time.UTC)
	case 17:
		return time.ParseInLocation(LayoutMillis, s[:14]+"."+s[14:], time.UTC)
	default:
		return time.Time{}, fmt.Errorf("time %q has %d digits, want 14 or 17", s, len(s))
	}
}

// FormatTime writes t as 14 digits, UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(LayoutSeconds) }

// FormatTimeMillis writes t as 17 digits, UTC (yyyyMMddHHmmssSSS).
func FormatTimeMillis(t time.Time) string {
	s := t.UTC().Format(LayoutMillis)
	return s[:14] + s[15:]
}
