package main

import (
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	s := time.Second
	tests := []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3 * s}, 3 * s},
		{[]time.Duration{5 * s, 1 * s, 3 * s}, 3 * s},
		{[]time.Duration{4 * s, 1 * s, 2 * s, 100 * s}, 3 * s},
	}
	for _, tt := range tests {
		in := append([]time.Duration(nil), tt.in...)
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("median reordered its input: %v", tt.in)
			}
		}
	}
}

func TestSelectMeasurements(t *testing.T) {
	all, err := selectMeasurements("")
	if err != nil || len(all) != len(measurements) {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	one, err := selectMeasurements("boot-tcg")
	if err != nil || len(one) != 1 || one[0].name != "boot-tcg" {
		t.Fatalf("boot-tcg: %+v, %v", one, err)
	}
	if _, err := selectMeasurements("boot-tcg,nonsense"); err == nil {
		t.Error("an unknown measurement was accepted")
	}
}
