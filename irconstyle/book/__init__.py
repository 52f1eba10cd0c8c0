"""What only the book and the benchmarks use: figures, the speed table, the committed evidence, the key-results boxes.
May import: experiments, train, evaluation, checkpoints, nets, method, data, runtime, results.
"""
