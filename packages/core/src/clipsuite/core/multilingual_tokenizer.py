"""The offline multilingual text tower of ``tiny-multilingual``: corpus, Unigram tokenizer, HF config.

XLM-RoBERTa (the text tower of open_clip's ``xlm-roberta-*`` models and RS-M-CLIP) tokenizes with a
SentencePiece Unigram model. ``tiny-multilingual`` ships the same kind of tokenizer, trained here with
the ``tokenizers`` library on a corpus this module generates (land-cover vocabulary and short captions
in ten languages: Latin, Cyrillic, Chinese and Korean script), so nothing is downloaded. The shipped
files (``model_configs/tiny_xlmr/``) are what ``write_text_tower`` writes; a test checks they agree.

Rebuild them with ``python -m clipsuite.core.multilingual_tokenizer``.
"""

from __future__ import annotations

import itertools
import json
import random
import string
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from tokenizers.trainers import UnigramTrainer

from clipsuite.core.checkpoints import atomic_write_json, atomic_write_text

LANGUAGES = ("en", "pt", "es", "fr", "de", "nl", "it", "zh", "ko", "ru")
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # XLM-R's ids 0-3, mask appended
VOCAB_SIZE = 1500
CONTEXT_LENGTH = 32
TOWER_DIR = Path(__file__).parent / "model_configs" / "tiny_xlmr"

# land-cover words as remote-sensing captions use them; one tuple per language, same order
_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("forest", "river", "lake", "sea", "beach", "desert", "farmland", "field", "city", "house", "building",
           "road", "bridge", "airport", "port", "ship", "solar panel", "tree", "mountain", "park", "sand", "water",
           "green", "blue", "dense", "dry", "many", "large", "small", "bare", "winding", "residential area"),
    "pt": ("floresta", "rio", "lago", "mar", "praia", "deserto", "terra agrícola", "campo", "cidade", "casa",
           "edifício", "estrada", "ponte", "aeroporto", "porto", "navio", "painel solar", "árvore", "montanha",
           "parque", "areia", "água", "verde", "azul", "densa", "seca", "muitos", "grande", "pequeno", "nua",
           "sinuoso", "área residencial"),
    "es": ("bosque", "río", "lago", "mar", "playa", "desierto", "tierra de cultivo", "campo", "ciudad", "casa",
           "edificio", "calle", "puente", "aeropuerto", "puerto", "barco", "panel solar", "árbol", "montaña",
           "parque", "arena", "agua", "verde", "azul", "denso", "seca", "muchos", "grande", "pequeño", "desnuda",
           "sinuoso", "zona residencial"),
    "fr": ("forêt", "rivière", "lac", "mer", "plage", "désert", "terre agricole", "champ", "ville", "maison",
           "bâtiment", "route", "pont", "aéroport", "port", "navire", "panneau solaire", "arbre", "montagne",
           "parc", "sable", "eau", "verte", "bleue", "dense", "sec", "nombreux", "grand", "petit", "nu",
           "sinueuse", "quartier résidentiel"),
    "de": ("Wald", "Fluss", "See", "Meer", "Strand", "Wüste", "Ackerland", "Feld", "Stadt", "Haus", "Gebäude",
           "Straße", "Brücke", "Flughafen", "Hafen", "Schiff", "Solarmodul", "Baum", "Berg", "Park", "Sand",
           "Wasser", "grün", "blau", "dicht", "trocken", "viele", "groß", "klein", "kahl", "gewunden",
           "Wohngebiet"),
    "nl": ("bos", "rivier", "meer", "zee", "strand", "woestijn", "landbouwgrond", "veld", "stad", "huis",
           "gebouw", "weg", "brug", "vliegveld", "haven", "schip", "zonnepaneel", "boom", "berg", "park", "zand",
           "water", "groen", "blauw", "dicht", "droog", "veel", "groot", "klein", "kaal", "kronkelend",
           "woonwijk"),
    "it": ("foresta", "fiume", "lago", "mare", "spiaggia", "deserto", "terreno agricolo", "campo", "città",
           "casa", "edificio", "strada", "ponte", "aeroporto", "porto", "nave", "pannello solare", "albero",
           "montagna", "parco", "sabbia", "acqua", "verde", "blu", "denso", "secco", "molti", "grande", "piccolo",
           "spoglio", "tortuoso", "zona residenziale"),
    "zh": ("森林", "河流", "湖泊", "大海", "海滩", "沙漠", "农田", "田野", "城市", "房屋", "建筑", "道路", "桥梁",
           "机场", "港口", "船只", "太阳能板", "树木", "山脉", "公园", "沙子", "水", "绿色", "蓝色", "茂密", "干燥",
           "许多", "大", "小", "荒芜", "蜿蜒", "住宅区"),
    "ko": ("숲", "강", "호수", "바다", "해변", "사막", "농경지", "들판", "도시", "주택", "건물", "도로", "다리", "공항",
           "항구", "배", "태양광 패널", "나무", "산", "공원", "모래", "물", "초록색", "푸른", "울창한", "건조한",
           "많은", "큰", "작은", "황량한", "구불구불한", "주거 지역"),
    "ru": ("лес", "река", "озеро", "море", "пляж", "пустыня", "сельхозугодья", "поле", "город", "дом", "здание",
           "дорога", "мост", "аэропорт", "порт", "корабль", "солнечная панель", "дерево", "гора", "парк", "песок",
           "вода", "зелёный", "синий", "густой", "сухой", "много", "большой", "маленький", "голый", "извилистая",
           "жилой район"),
}

# glue words and whole captions, so the tokenizer sees real word order in every script
_PHRASES: dict[str, tuple[str, ...]] = {
    "en": ("a satellite image of", "there is a", "next to a", "in the", "with", "and", "of", "rows of",
           "flows through the land", "no plants", "many trees in a forest area", "striped fields", "crop fields"),
    "pt": ("uma imagem de satélite de", "há um", "ao lado de um", "na", "com", "e", "de", "fileiras de",
           "atravessa a terra", "sem plantas", "muitas árvores numa área florestal", "campos listrados",
           "campos de cultivo verdes e castanhos", "uma usina solar", "castanhos"),
    "es": ("una imagen de satélite de", "hay un", "junto a un", "en la", "con", "y", "de", "filas de",
           "atraviesa el terreno", "sin plantas", "muchos árboles en una zona forestal", "campos a rayas",
           "campos de cultivo verdes y marrones", "una granja solar", "muchos edificios y calles"),
    "fr": ("une image satellite de", "il y a un", "à côté d'un", "dans la", "avec", "et", "de", "des rangées de",
           "traverse le terrain", "sans plantes", "de nombreux arbres dans une zone forestière", "champs rayés",
           "des champs cultivés verts et bruns", "une ferme solaire", "du sable jaune"),
    "de": ("ein Satellitenbild von", "es gibt einen", "neben einem", "in der", "mit", "und", "von",
           "Reihen von Modulen", "fließt durch das Land", "ohne Pflanzen", "viele Bäume in einem Waldgebiet",
           "gestreiften Feldern", "grüne und braune Felder mit Getreide", "ein Solarpark", "gelber Sand"),
    "nl": ("een satellietbeeld van", "er is een", "naast een", "in de", "met", "en", "van", "rijen van",
           "stroomt door het land", "zonder planten", "veel bomen in een bosgebied", "gestreepte velden"),
    "it": ("un'immagine satellitare di", "c'è un", "accanto a un", "nella", "con", "e", "di", "file di",
           "attraversa il terreno", "senza piante", "molti alberi in una zona boschiva", "campi a strisce"),
    "zh": ("一张卫星图像", "有一个", "旁边", "在", "和", "的", "一片茂密的绿色森林", "森林地区有许多树木",
           "一条河流穿过大地", "一条蜿蜒的蓝色河流", "一座有成排面板的太阳能电站", "田野里有许多太阳能板",
           "条纹状的农田", "绿色和棕色的庄稼地", "一片荒芜的沙漠", "没有植物的干燥黄沙", "房屋密集的住宅区",
           "城市里有许多建筑和道路"),
    "ko": ("위성 이미지", "이 있다", "옆에", "에", "와", "의", "울창한 푸른 숲", "숲 지역에 많은 나무들",
           "강이 땅을 가로질러 흐른다", "구불구불한 푸른 강", "패널이 줄지어 있는 태양광 발전소",
           "들판에 있는 많은 태양광 패널", "줄무늬 모양의 농경지", "초록색과 갈색의 농작물 밭", "황량한 모래 사막",
           "식물이 없는 건조한 노란 모래", "주택이 밀집한 주거 지역", "도시의 많은 건물과 도로"),
    "ru": ("спутниковый снимок", "есть", "рядом с", "в", "с", "и", "густой зелёный лес",
           "много деревьев в лесной зоне", "река течёт через местность", "извилистая синяя река",
           "солнечная электростанция с рядами панелей", "много солнечных панелей в поле",
           "сельхозугодья с полосатыми полями", "зелёные и коричневые поля с посевами", "голая песчаная пустыня",
           "сухой жёлтый песок без растений", "плотный жилой район с домами", "много зданий и дорог в городе"),
}


def corpus(lines_per_language: int = 400, seed: int = 0) -> Iterator[str]:
    """Seeded pseudo-captions: phrases and words of one language at a time, plus every word alone."""
    rng = random.Random(seed)
    for language in LANGUAGES:
        words, phrases = _WORDS[language], _PHRASES[language]
        yield from words
        yield from phrases
        for _ in range(lines_per_language):
            parts = [rng.choice(phrases), rng.choice(words), rng.choice(phrases), rng.choice(words)]
            yield " ".join(parts[: rng.randint(2, 4)])
    # digits, ASCII and punctuation once, so no Latin character is unknown
    yield " ".join(string.ascii_letters + string.digits + string.punctuation)


def _alphabet() -> list[str]:
    chars = set(string.ascii_letters + string.digits + string.punctuation)
    for text in itertools.chain(*_WORDS.values(), *_PHRASES.values()):
        chars.update(text.replace(" ", ""))
    return sorted(chars)


def train_unigram(vocab_size: int = VOCAB_SIZE, seed: int = 0) -> Tokenizer:
    """A SentencePiece-style Unigram tokenizer (NFKC, metaspace) with XLM-R's special tokens."""
    tokenizer = Tokenizer(Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = UnigramTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), unk_token="<unk>",
                             initial_alphabet=_alphabet(), max_piece_length=12, show_progress=False)
    tokenizer.train_from_iterator(list(corpus(seed=seed)), trainer=trainer)
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)])
    return tokenizer


def xlmr_config(vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 2) -> dict[str, object]:
    """A small XLM-RoBERTa config (positions start after the padding id, as in XLM-R: +2)."""
    return {"architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta", "vocab_size": vocab_size,
            "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "intermediate_size": 2 * hidden, "max_position_embeddings": CONTEXT_LENGTH + 2, "type_vocab_size": 1,
            "bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "layer_norm_eps": 1e-5,
            "initializer_range": 0.02, "position_embedding_type": "absolute"}


def write_text_tower(folder: str | Path = TOWER_DIR, vocab_size: int = VOCAB_SIZE) -> Path:
    """Train the tokenizer and write ``tokenizer.json``, ``tokenizer_config.json``,
    ``special_tokens_map.json`` and the XLM-R ``config.json`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_unigram(vocab_size)
    atomic_write_text(folder / "tokenizer.json", tokenizer.to_str(pretty=False) + "\n")
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
               "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
    atomic_write_json(folder / "tokenizer_config.json", {"tokenizer_class": "XLMRobertaTokenizerFast",
                                                         "model_max_length": CONTEXT_LENGTH, **special})
    atomic_write_json(folder / "special_tokens_map.json", special)
    atomic_write_json(folder / "config.json", xlmr_config(tokenizer.get_vocab_size()))
    return folder


if __name__ == "__main__":
    written = write_text_tower()
    vocab = json.loads((written / "config.json").read_text())["vocab_size"]
    print(f"wrote {written} (vocabulary {vocab})")
