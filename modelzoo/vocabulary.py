"""Words for generated speech: the everyday talk around a policy word, and the voices that
speak it. Each list is split in two disjoint halves, one for the training style and one for
the shifted style, so a model evaluated on the shifted set has never heard its words or its
voices (modelzoo/speech.py)."""

from __future__ import annotations

# Everyday words of a livestream's chat, none of which sounds like, or combines into, a
# default policy word ("man" + "go", "pine" + "apple" and the like are left out).
EVERYDAY = """
about above across action actually after again against agree ahead almost alone along
already always amazing animal another answer anyone anything around arrive asked autumn
awesome baby back bad bag ball basket beach beautiful because become bedroom before begin
behind believe below best better between bicycle big bird birthday black blanket blue boat
body book boring bottle bottom boy brave bread break breakfast bridge bright bring brother
brown build bus busy butter button buy cake call camera candle captain car card careful
carry castle catch chair chance change cheap check cheese chicken child chocolate choose
church circle city class clean clever climb clock close cloud coffee cold colour come
comment common computer cook cool corner cotton count country cousin cover crazy cricket
cross crowd cup cute dance danger dark daughter day dead dear decide deep desk dinner
direct doctor dog dollar door double down draw dream dress drink drive drop dry duck during
early earth easy eight electric eleven empty engine enjoy enough evening every everyone
exactly example excited explain eye face fact fair fall family famous far farm fast father
favourite feel festival few field fifteen fight fill film finally find fine finger finish
fire first fish five flag floor flower fly follow food foot football forest forget fork
forty four free fresh friday friend front full funny future game garden gift girl give
glass gold good great green ground group grow guitar guess half hall hand happen happy hard
hat have head hear heart heavy hello help here high hill history hold holiday home honest
hope horse hospital hot hotel hour house hundred hungry hurry idea important inside invite
island jacket journey juice jump jungle keep kettle key kind king kitchen kite knee knife
know ladder lady lake lamp large last late laugh lazy learn leave left lemon lesson letter
library light listen little live long look lorry loud lovely lucky lunch machine magic
market matter maybe meat meet message middle milk minute mirror money monday month moon
morning mother mountain mouse mouth movie music name narrow near neck need never news next
nice night nine noise north nothing notice number ocean office often okay old open orange
other outside over paint paper parent park party pass past pencil people perfect phone
picture piece pillow pink plane plant plastic plate play please pocket point police pool
poor popular potato power present pretty price problem pull purple push queen question
quick quiet rabbit race radio rain ready really record red remember rest rice rich ride
right river road robot rock roof room round rule run sad safe salt same sand saturday say
school science score sea season second secret seven shadow share sheep shirt shoe shop short
shout show sing sister sit six skate sky sleep slow small smile snow soft some song soon
sorry sound soup south space speak special spoon sport spring square stairs star start
station stay stick still stone stop story street strong student study summer sun sunday
super supper sure surprise sweet swim table talk tall taxi teacher team teeth television
tell ten tennis thank thing think thirty thousand three thursday ticket tiger time tired
today together tomorrow tonight tooth top towel tower town toy traffic train travel tree
trip trouble truck true try tuesday turn twelve twenty two umbrella uncle under until up
useful usually valley very video village visit voice wait walk wall want warm wash watch
water weather wednesday week welcome well west wet what wheel where white why wide wife
wind window winter wish woman wonderful wood word work world worry write wrong yard year
yellow yesterday young zero
""".split()

# espeak-ng's voice variants ("-v <language>+<variant>"): every speaker it ships.
VARIANTS = """
adam Alex Alicia Andrea Andy Annie antonio aunty belinda benjamin boris caleb croak david
Demonic Denis Diogo ed edward edward2 f1 f2 f3 f4 f5 fast Gene Gene2 grandma grandpa
gustave Henrique Hugo iven iven2 iven3 iven4 Jacky john kaukovalta klatt klatt2 klatt3
klatt4 klatt5 klatt6 Lee linda m1 m2 m3 m4 m5 m6 m7 m8 marcelo Marco Mario max Michael
michel miguel Mike Mr Nguyen norbert pablo paul pedro quincy RicishayMax RicishayMax2
RicishayMax3 rob robert robosoft robosoft2 robosoft3 robosoft4 robosoft5 robosoft6
robosoft7 robosoft8 sandro shelby steph steph2 steph3 Storm travis Tweaky UniRobot victor
whisper whisperf zac
""".split()

# Languages whose speakers make up the babble under a training clip, and under a shifted one.
BABBLE_LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "ru", "ar", "id", "vi")


def halves(words: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every other word in each half: two disjoint lists spread over the whole alphabet."""
    return tuple(words[0::2]), tuple(words[1::2])


TRAINING_WORDS, SHIFTED_WORDS = halves(EVERYDAY)
TRAINING_VARIANTS, SHIFTED_VARIANTS = halves(VARIANTS)
TRAINING_BABBLE, SHIFTED_BABBLE = halves(list(BABBLE_LANGUAGES))


ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
          "ch", "sh", "th", "br", "dr", "gr", "kl", "st", "tr")
VOWELS = ("a", "e", "i", "o", "u", "ai", "ee", "oo", "ou")
CODAS = ("", "", "", "n", "m", "r", "s", "t", "k", "l")


def invented(rng, avoid: tuple[str, ...], syllables: tuple[int, int] = (1, 3)) -> str:
    """A pronounceable word no dictionary has, sharing no three letters in a row with any of
    ``avoid`` (the policy words and near misses), so it cannot pass for one of them."""
    while True:
        word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                       for _ in range(rng.randint(*syllables)))
        if not any(word[i:i + 3] in other for other in avoid for i in range(len(word) - 2)):
            return word
