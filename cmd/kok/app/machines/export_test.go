package machines

// NewRetryCommand lets the tests fix the clock of kok machine retry.
var NewRetryCommand = newRetryCommand
