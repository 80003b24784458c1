module gopark.dev/demo/leaky

go 1.21
