"""The method: ConStyle (query encoder, momentum encoder, queue) and IRConStyle's losses.
May import: runtime.
"""
