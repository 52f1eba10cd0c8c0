"""What only the book and benchmarks use: figures, speed table, committed evidence, key results.
May import: experiments, train, evaluation, checkpoints, nets, method, data, runtime, results.
"""
