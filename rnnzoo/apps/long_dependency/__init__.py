"""Long-dependency problems (task type ``long-dependency``): the adding problem and copy memory
of Bai, Kolter & Koltun (2018), generated from a seed for any length ``T``, scored against their
memoryless baselines: how far back a recurrent cell can carry information. User call
``solve(x)`` (alias ``predict``); CLI verb ``rnnzoo solve``."""
