"""RS3 stages: rs3_read_fmow, rs3_read_bigearthnet, rs3_read_millionaid (sharing readers), rs3_metacaption,
rs3_caption, rs3_final. One module per rule, named for it."""
