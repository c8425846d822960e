# Pure-Python work whose CPU time bench/libpython.sh compares across ways of
# linking libpython: prints its CPU ms.
import fractions
import time

t = time.process_time()
for i in range(20000):
    fractions.Fraction(3, 4).limit_denominator(2)
sum(i * i for i in range(300000))
sorted(range(200000), key=lambda x: -x)
print(round((time.process_time() - t) * 1000, 1))
