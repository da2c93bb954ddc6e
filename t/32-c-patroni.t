use strict; my $b = 't/c/bin/test_patroni'; -x $b or do { print "1..1\nnot ok 1 - $b not built (run make)\n"; exit 1 }; exec $b or die;
