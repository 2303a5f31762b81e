//go:build unix && !linux

package supervise

func defaultSource() procSource { return psutil{} }
