// genericleak: every request parks forever in a method of a generic type. Its name has
// brackets — main.(*queue[...]).wait in dumps and traces, main.(*queue[go.shape.int]).wait
// in profiles — which a terminal renderer must print as they are, not take for
// markup. (tests/test_untrusted_text.py also builds it under a folder named with brackets.)
package main

import "goparkfixtures/harness"

type queue[T any] struct{ items chan T }

func (q *queue[T]) wait() T {
	return <-q.items // nobody ever sends: the leak
}

func park[T any]() T {
	q := &queue[T]{items: make(chan T)}
	return q.wait()
}

func main() {
	harness.Run(harness.Program{Request: func(int) { park[int]() }})
}
