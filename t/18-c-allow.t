use lib 't/lib';
use CTest;
CTest::run('test_allow');
