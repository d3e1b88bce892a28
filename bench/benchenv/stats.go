package benchenv

import (
	"context"
	"slices"
	"time"
)

// Parallel calls fn for every i in [0, n) from the given number of
// goroutines, and stops at the first error.
func Parallel(ctx context.Context, n, goroutines int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	done := make(chan struct{})
	for range goroutines {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	for range goroutines {
		<-done
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// Percentile of sorted durations, nearest rank (q from 1 to 100).
func Percentile(sorted []time.Duration, q int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)*q+99)/100-1]
}

// Median of f over the runs; 0 for none.
func Median[T any](runs []T, f func(T) float64) float64 {
	if len(runs) == 0 {
		return 0
	}
	xs := make([]float64, len(runs))
	for i, r := range runs {
		xs[i] = f(r)
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}
